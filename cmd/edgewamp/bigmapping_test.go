package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestHugeMappingRefused: yaml's strict decoding compares each key of a
// mapping with every later one (its duplicate-key check), so a mapping's
// cost grows with the square of its keys: 30,000 unknown top-level keys
// (289 KB) kept check-config 9 s, a gateway.errors of 100,000 URIs
// (2.8 MB) minutes, and a 16 MiB file of them hours, at every SIGHUP too,
// which held the reload path (TLS certificate rotation among it) all that
// time. No key of the configuration takes more than a few hundred
// entries: a mapping of more than 10,000 keys is refused, at once and
// naming it, before the strict decoding.
func TestHugeMappingRefused(t *testing.T) {
	errs := func(n int) string {
		var b strings.Builder
		b.WriteString("gateway:\n  errors:\n")
		for i := range n {
			fmt.Fprintf(&b, "    com.example.e%d: 500\n", i)
		}
		return b.String()
	}
	p := writeFile(t, "c.yaml", errs(10_001))
	_, e, code := runCLI("check-config", p)
	if want := "line 3: gateway.errors holds 10001 keys, more than a mapping of the configuration may (10000)"; code != 1 || !strings.Contains(e, want) {
		t.Fatalf("check-config of 10,001 gateway.errors: exit %d, want 1 and %q: %.300s", code, want, e)
	}
	p = writeFile(t, "c.yaml", errs(10_000))
	if _, e, code := runCLI("check-config", p); code != 0 {
		t.Fatalf("check-config of 10,000 gateway.errors: exit %d: %.300s", code, e)
	}
	var top strings.Builder
	for i := range 10_001 {
		fmt.Fprintf(&top, "k%d: 1\n", i)
	}
	p = writeFile(t, "c.yaml", top.String())
	if _, e, code := runCLI("check-config", p); code != 1 || !strings.Contains(e, "line 1: the configuration holds 10001 keys") {
		t.Fatalf("check-config of 10,001 top-level keys: exit %d: %.300s", code, e)
	}
}
