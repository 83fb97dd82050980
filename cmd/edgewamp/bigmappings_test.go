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
