//go:build !race

package loop

// raceEnabled reports whether the race detector is on: some tests scale
// down under it.
const raceEnabled = false
