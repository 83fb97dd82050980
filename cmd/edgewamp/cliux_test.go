package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigTabNamesItsLine: a tab in a line's indentation is named
// as such, on the line that holds it. yaml's own message named the line
// before it when the tab followed a sibling key or spaces, and said only
// "found character that cannot start any token" for others.
func TestCheckConfigTabNamesItsLine(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, body string
		line       string
	}{
		{"first key", "log:\n\tlevel: info\n", "line 2"},
		{"after a sibling", "log:\n  level: info\n\tformat: json\n", "line 3"},
		{"in a list item", "realms:\n  - name: a\n\t  anonymous: true\n", "line 3"},
		{"after spaces", "log:\n   \tlevel: info\n", "line 2"},
		{"a list", "realms:\n\t- name: a\n", "line 2"},
	}
	for i, c := range cases {
		p := filepath.Join(dir, "c"+string(rune('0'+i))+".yaml")
		if err := os.WriteFile(p, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(binPath, "check-config", p).CombinedOutput()
		if code := exitCode(err); code != 1 {
			t.Errorf("%s: exit %d, want 1: %s", c.name, code, out)
		}
		want := p + ": " + c.line + ": a tab in the indentation"
		if !strings.Contains(string(out), want) {
			t.Errorf("%s: got %q, want it to say %q", c.name, out, want)
		}
	}
}
