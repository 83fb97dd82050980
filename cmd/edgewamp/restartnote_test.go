package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestRestartOnlyNoteNamesEverySection (found by the review of the
// reload as an operator): a reload's log line lists what needs a restart
// (restartOnlyNote), and its warning names the sections of the file that
// changed among them (restartOnlyChanges). The warning named shutdown
// (shutdown.drain_timeout applies at a restart only: the stop uses the
// start's) while the note and README's list of what needs a restart
// left it out, so an operator reading either took a new drain_timeout
// for applied. Every section the warning can name is in the note.
func TestRestartOnlyNoteNamesEverySection(t *testing.T) {
	const base = "listeners: [{address: \"127.0.0.1:0\"}]\ngateway: {listen: \"127.0.0.1:0\"}\n"
	running, err := parseConfig([]byte(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	for section, yml := range map[string]string{
		"log":       "log: {level: debug}\n",
		"loops":     "loops: 3\n",
		"listeners": "listeners: [{address: \"127.0.0.1:1\"}]\n",
		"websocket": "websocket: {path: /w}\n",
		"limits":    "limits: {calls_in_flight: 7}\n",
		"keepalive": "keepalive: {interval: 7s}\n",
		"rpc":       "rpc: {call_timeout: 7s}\n",
		"shutdown":  "shutdown: {drain_timeout: 7s}\n",
		"tuning":    "tuning: {flush: round}\n",
		"data_dir":  "data_dir: " + t.TempDir() + "\n",
		"gateway":   "gateway: {listen: \"127.0.0.1:0\", call_timeout: 7s}\n",
		"oauth":     "oauth: {rotate_every: 2h}\n",
	} {
		doc := base + yml
		if key, _, _ := strings.Cut(yml, ":"); strings.HasPrefix(base, key+":") || strings.Contains(base, "\n"+key+":") {
			doc = regexp.MustCompile(`(?m)^`+key+`:.*\n`).ReplaceAllLiteralString(base, yml) // the section replaced
		}
		next, err := parseConfig([]byte(doc), nil)
		if err != nil {
			t.Fatalf("%s: %v", section, err)
		}
		got := restartOnlyChanges(running, next)
		if len(got) != 1 || got[0] != section {
			t.Errorf("%s changed: restartOnlyChanges says %q", section, got)
			continue
		}
		if !regexp.MustCompile(`(^|[ ,(])` + regexp.QuoteMeta(section) + `($|[ ,:(])`).MatchString(restartOnlyNote) {
			t.Errorf("%s: the reload warns that it needs a restart, but the reload's note of what needs one leaves it out: %q", section, restartOnlyNote)
		}
	}
}
