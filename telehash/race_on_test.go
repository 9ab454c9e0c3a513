//go:build race

package telehash

const raceEnabled = true
