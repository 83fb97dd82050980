package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestHugeMaxConnectionsStillWarnFDs: listeners whose max_connections add
// up past what an int holds (two at 2^63−1) still draw the warning that
// they pass the open-file limit; before, their sum wrapped to −2 and the
// router started silent.
func TestHugeMaxConnectionsStillWarnFDs(t *testing.T) {
	p := writeConfig(t, "listeners:\n  - {address: \"127.0.0.1:0\", max_connections: 9223372036854775807}\n"+
		"  - {address: \"127.0.0.1:0\", max_connections: 9223372036854775807}\n")
	r := launch(t, exec.Command(binPath, "run", "-config", p))
	const warn = "listeners' max_connections add up to more than the open-file limit allows"
	if !strings.Contains(r.logs(), warn) {
		t.Fatalf("no %q line:\n%s", warn, r.logs())
	}
	if !strings.Contains(r.logs(), "max_connections=9223372036854775807") {
		t.Errorf("the warning does not give the saturated sum:\n%s", grepLines(r.logs(), "max_connections"))
	}
}
