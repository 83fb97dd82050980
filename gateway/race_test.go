//go:build race

package gateway

// raceEnabled reports whether the race detector is on: some tests scale
// down under it.
const raceEnabled = true
