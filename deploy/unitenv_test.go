package deploy

import (
	"fmt"
	"strings"
	"testing"
)

// postinst gives an upgrade's check-config the unit's Environment= (as
// systemd gives it to ExecStartPre) from `systemctl show -p Environment
// --value`, which prints each entry as one word: as it is, or, when it
// holds a space or a character special to the shell, double-quoted with
// backslash escapes (systemd's shell_maybe_quote: \" \\ \` \$, C escapes
// such as \t for control characters, \NNN for bytes that are not UTF-8).
// postinst split that line at every space and took the quotes as part of
// the values: Environment="EDGEWAMP_SECRET=two words" reached the check
// as EDGEWAMP_SECRET unset (the word `"EDGEWAMP_SECRET=two` has no valid
// name), a secret the configuration names with *_env then refused,
// and the upgrade left the router on the previous release, or with a
// value holding a `"` or a `$`, the check given another value than the
// unit.
//
// A dry run of an upgrade's postinst whose new binary prints the values
// it was given, the unit's Environment= as systemctl prints it.
func TestPostinstUpgradeReadsQuotedEnvironment(t *testing.T) {
	type entry struct{ name, value, shown string }
	entries := []entry{
		{"PLAIN", "unit", `PLAIN=unit`},
		{"SPACED", "two  words ", `"SPACED=two  words "`},
		{"DQ", `say "hi" to $HOME`, `"DQ=say \"hi\" to \$HOME"`},
		{"BS", `a\b`, `"BS=a\\b"`},
		{"BT", "`id`", "\"BT=\\`id\\`\""},
		{"SQ", "it's", `"SQ=it's"`},
		{"TAB", "a\tb", `"TAB=a\tb"`},
		{"GLOB", "/etc/*.yaml", `"GLOB=/etc/*.yaml"`},
		{"RAW", "\xff!", `"RAW=\377!"`},
		{"EMPTY", "", `EMPTY=`},
		{"LAST", "x y", `"LAST=x y"`},
	}
	var shown []string
	binary := "if [ \"$1\" = check-config ]; then\n"
	for _, e := range entries {
		shown = append(shown, e.shown)
		binary += fmt.Sprintf("printf 'got %s=[%%s]\\n' \"${%s-unset}\"\n", e.name, e.name)
	}
	binary += "exit 1\nfi\nexit 0\n"
	_, out := dryRunOutput(t, scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, edgewamp: binary,
		environment: strings.Join(shown, " ")})
	for _, e := range entries {
		if line := fmt.Sprintf("got %s=[%s]\n", e.name, e.value); !strings.Contains(out, line) {
			t.Errorf("check-config was not given %s as systemd gives it to the unit (shown %s): want %q", e.name, e.shown, line)
		}
	}
	if t.Failed() {
		t.Logf("postinst output:\n%s", out)
	}
}
