//go:build !race

package proto

// raceEnabled: see race_on_test.go.
const raceEnabled = false
