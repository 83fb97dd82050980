//go:build race

package proto

// raceEnabled is set under the race detector, which makes the largest
// corpus values (65536-element lists and dicts, 64 KiB strings) too slow
// to push through every serializer pair and the reference decoders; their
// encodings are still pinned without -race.
const raceEnabled = true
