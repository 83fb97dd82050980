// Package fuzz holds cross-package fuzz harnesses (differential codec
// targets). `make fuzz` runs every target for FUZZTIME each.
package fuzz
