//go:build !race

package xmpppipe

const raceEnabled = false
