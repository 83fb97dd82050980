package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCheckConfigRuntimeErrorsShowEveryError: the runtime: block's values
// out of range (gogc 5, memory_limit under 16MiB, heap_floor over 1GiB,
// a size that is not one) ended yaml's decoding, as a wrong duration or
// size did before (keyedError.typeError): check-config showed that error
// alone, hiding the file's other errors, those before it too (an unknown
// key on line 2 went unsaid beside a heap_floor on line 4), so an operator
// fixed them one check at a time; and a list for gogc said "want a
// percentage like 100, or off", naming no key.
func TestCheckConfigRuntimeErrorsShowEveryError(t *testing.T) {
	cases := []struct {
		body string
		want []string
	}{
		{"limits:\n  max_mesage: 1MiB\nruntime:\n  heap_floor: 2GiB\nloops: x\n", []string{
			"line 2: key max_mesage is not a known configuration key",
			"line 4: runtime.heap_floor 2GiB is above 1GiB",
			"line 5: loops takes a whole number",
		}},
		{"foo: 1\nruntime:\n  gogc: 5\n  memory_limit: 1MiB\nrealms: x\n", []string{
			"line 1: key foo is not a known configuration key",
			`line 3: runtime.gogc must be a percentage between 10 and 10000, or off, not "5"`,
			"line 4: runtime.memory_limit 1MiB is below 16MiB",
			"line 5: realms takes a list",
		}},
		{"runtime:\n  gogc: [5]\n  heap_floor: 1.5.0MiB\nfoo: 1\n", []string{
			"line 2: runtime.gogc takes a percentage like 100, or off, not a list",
			"line 3: runtime.heap_floor: want auto, off or a size",
			"line 4: key foo is not a known configuration key",
		}},
	}
	for _, k := range cases {
		p := writeFile(t, "c.yaml", k.body)
		out, err := exec.Command(binPath, "check-config", p).CombinedOutput()
		if code := exitCode(err); code != 1 {
			t.Fatalf("exit %d, want 1: %s", code, out)
		}
		for _, want := range k.want {
			if !strings.Contains(string(out), want) {
				t.Errorf("%q: missing %q in %s", k.body, want, out)
			}
		}
	}
}
