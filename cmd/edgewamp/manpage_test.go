package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The man page (deploy/debian/edgewamp.1, installed by the .deb and in the
// tarball) agrees with the binary and README's "Commands": its synopsis
// names every command and every run flag the binary's usage has, and its
// account of a stop the drain that comes first. It said "every session
// then gets GOODBYE ... the router exits 0 once they closed (at most 10
// seconds later)", written before the drain (shutdown.drain_timeout, 10 s,
// then up to 10 s for the sessions to close and 5 s for a mesh node's
// leave: 25 s), so a service manager given the man page's 10 s killed the
// router in its drain; and its synopsis left out `edgewamp help COMMAND`.
func TestManPageAgreesWithUsage(t *testing.T) {
	b, err := os.ReadFile("../../deploy/debian/edgewamp.1")
	if err != nil {
		t.Fatal(err)
	}
	// The page's text without its troff requests and escapes.
	var text []string
	for _, l := range strings.Split(string(b), "\n") {
		if l == ".br" || l == ".PP" || strings.HasPrefix(l, ".TH") || strings.HasPrefix(l, ".TP") {
			text = append(text, "\n")
			continue
		}
		if strings.HasPrefix(l, ".SH ") {
			text = append(text, "\n"+strings.TrimPrefix(l, ".SH "))
			continue
		}
		for _, req := range []string{".RB ", ".BR ", ".IR ", ".B ", ".I "} {
			if strings.HasPrefix(l, req) {
				l = strings.NewReplacer("[ ", "[", " ]", "]", " |", "|", "| ", "|", " ,", ",").Replace(strings.TrimPrefix(l, req))
				break
			}
		}
		text = append(text, l)
	}
	page := strings.ReplaceAll(strings.Join(text, " "), `\-`, "-")
	synopsis, _, ok := strings.Cut(page, "DESCRIPTION")
	if !ok {
		t.Fatal("no DESCRIPTION section")
	}
	o, _, _ := runCLI("-h")
	for _, m := range regexp.MustCompile(`(?m)^  edgewamp ([a-z-]+(?: [a-z]+)?)`).FindAllStringSubmatch(o, -1) {
		cmd := m[1]
		if !strings.Contains(synopsis, "edgewamp "+strings.Fields(cmd)[0]) {
			t.Errorf("the man page's synopsis does not name %q, which the usage has", "edgewamp "+cmd)
		}
	}
	o, _, _ = runCLI("run", "-h")
	for _, m := range regexp.MustCompile(`(?m)^  (-[a-z-]+)`).FindAllStringSubmatch(o, -1) {
		if !strings.Contains(synopsis, "["+m[1]+" ") {
			t.Errorf("the man page's synopsis of run does not name %s", m[1])
		}
	}
	if !strings.Contains(page, "shutdown.drain_timeout") || strings.Contains(page, "at most 10 seconds later") {
		t.Errorf("the man page's account of a stop leaves out the drain (README, \"Commands\"):\n%s", page)
	}
}
