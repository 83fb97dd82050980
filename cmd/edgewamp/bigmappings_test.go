package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestManyLargeMappingsRefused: a mapping of more than 10,000 keys is
// refused before yaml's strict decoding, whose check for a key given
// twice takes time with the square of a mapping's keys; but each mapping
// was bounded alone, so a file of many mappings just under the bound
// (gateway routes' errors of 10,000 URIs each: 132 of them in 15 MiB)
// kept check-config, and every SIGHUP, busy 47 s on a loaded 2-core
// machine (8.5 s for the same bytes in mappings of 100 keys). The
// mappings' squares are bounded together, at twice a mapping of 10,000
// keys': three mappings of 8,200 keys are refused, naming the one that
// goes past; one of 10,000 beside the file's small ones is still taken
// (TestHugeMappingRefused).
func TestManyLargeMappingsRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("gateway:\n  routes:\n")
	for r := range 3 {
		fmt.Fprintf(&b, "    - path: /r%d\n      method: POST\n      realm: realm1\n      call: com.example.p%d\n      errors:\n", r, r)
		for i := range 8_200 {
			fmt.Fprintf(&b, "        com.example.e%d: 500\n", i)
		}
	}
	p := writeFile(t, "c.yaml", b.String())
	_, e, code := runCLI("check-config", p)
	if want := "line 16418: gateway.routes[2].errors holds 8200 keys: with the configuration's other large mappings"; code != 1 || !strings.Contains(e, want) {
		t.Fatalf("check-config of three routes' errors of 8,200 keys: exit %d, want 1 and %q: %.400s", code, want, e)
	}
}

// TestAliasedLargeMappingsRefused: yaml decodes an alias's mapping anew
// wherever it is named, its check for a key given twice with it, but the
// bound on the mappings' squares counted a mapping once, where the file
// gives it: a 135 KB file whose 20 gateway routes name one anchored
// gateway.errors of 9,000 URIs (*e) kept check-config 14.7 s on a loaded
// 2-core machine (3.3 s CPU), then "ok". An alias counts its mapping's
// work again, and the alias that goes past is named.
func TestAliasedLargeMappingsRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("gateway:\n  errors: &e\n")
	for i := range 9_000 {
		fmt.Fprintf(&b, "    com.example.e%d: 500\n", i)
	}
	b.WriteString("  routes:\n")
	for r := range 20 {
		fmt.Fprintf(&b, "    - {path: /r%d, method: POST, realm: realm1, call: com.example.p%d, errors: *e}\n", r, r)
	}
	p := writeFile(t, "c.yaml", b.String())
	_, e, code := runCLI("check-config", p)
	if want := "line 9005: gateway.routes[1].errors holds 9000 keys: with the configuration's other large mappings"; code != 1 || !strings.Contains(e, want) {
		t.Fatalf("check-config of 20 aliases of a 9,000-key mapping: exit %d, want 1 and %q: %.400s", code, want, e)
	}
}
