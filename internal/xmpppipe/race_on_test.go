//go:build race

package xmpppipe

// raceEnabled: the race detector slows the message path about tenfold.
const raceEnabled = true
