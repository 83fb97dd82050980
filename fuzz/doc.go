// Package fuzz holds cross-package harnesses: differential codec fuzz
// targets (`make fuzz` runs every target for FUZZTIME each), and the
// hostile-peer suite that drives the built router binary over loopback
// (hostile_test.go: resets right after answered messages, and a randomized
// lifecycle stress test that `make soak DURATION=10m` runs long).
package fuzz
