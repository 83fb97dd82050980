package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestAnonymousTrueWithoutAnonymousMethodWarned: a realm's authmethods
// list restricts its logins to the methods listed, whatever anonymous
// says, so `anonymous: true` beside a list without anonymous left the
// realm closed to anonymous clients while the file said it was open;
// check-config said ok and run started without a word. Both warn now,
// naming the realm and the fix (a warning: the realm fails closed, and a
// file that ran before still runs); either key alone, or both agreeing,
// is said nothing of.
func TestAnonymousTrueWithoutAnonymousMethodWarned(t *testing.T) {
	const users = "    users: [{authid: a, role: u, secret: \"0123456789abcdef0123\"}]\n"
	p := writeFile(t, "c.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nrealms:\n  - name: r\n    anonymous: true\n    authmethods: [wampcra]\n"+users)
	const want = `realms[0].anonymous is true, but realms[0].authmethods does not list anonymous (realm "r")`
	if _, e, code := runCLI("check-config", p); code != 0 || !strings.Contains(e, "edgewamp: "+p+": warning: "+want) {
		t.Errorf("check-config: exit %d, want 0 and the warning %q: %s", code, want, e)
	}
	r := launch(t, exec.Command(binPath, "run", "-config", p))
	r.waitLog("edgewamp started", 1)
	if !strings.Contains(r.logs(), "level=WARN msg=\""+strings.ReplaceAll(want, `"`, `\"`)) {
		t.Errorf("run did not warn %q:\n%s", want, r.logs())
	}
	for _, body := range []string{
		"realms:\n  - name: r\n    anonymous: true\n    authmethods: [anonymous, wampcra]\n" + users,
		"realms:\n  - name: r\n    authmethods: [wampcra]\n" + users,
		"realms:\n  - name: r\n    anonymous: false\n    authmethods: [wampcra]\n" + users,
		"realms:\n  - name: r\n    anonymous: true\n" + users,
	} {
		if _, e, code := runCLI("check-config", writeFile(t, "ok.yaml", body)); code != 0 || strings.Contains(e, "does not list anonymous") {
			t.Errorf("check-config of %q: exit %d: %s", body, code, e)
		}
	}
}

// A reload that sets `anonymous: true` beside an authmethods list without
// anonymous says so too: realms and their methods apply at a reload, and
// the realm then refuses the anonymous clients its file says it takes.
// Before, only check-config and the start said it: the reload logged
// "configuration reloaded" and nothing else.
func TestAnonymousTrueWithoutAnonymousMethodWarnedAtReload(t *testing.T) {
	const users = "    users: [{authid: a, role: u, secret: \"0123456789abcdef0123\"}]\n"
	const head = "listeners: [{address: \"127.0.0.1:0\"}]\nrealms:\n  - name: r\n"
	p := writeFile(t, "c.yaml", head+"    anonymous: true\n    authmethods: [anonymous, wampcra]\n"+users)
	r := launch(t, exec.Command(binPath, "run", "-config", p))
	r.waitLog("edgewamp started", 1)
	if err := os.WriteFile(p, []byte(head+"    anonymous: true\n    authmethods: [wampcra]\n"+users), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("SIGHUP: configuration reloaded", 1)
	const want = `realms[0].anonymous is true, but realms[0].authmethods does not list anonymous (realm "r")`
	if !strings.Contains(r.logs(), "level=WARN msg=\"SIGHUP: "+strings.ReplaceAll(want, `"`, `\"`)) {
		t.Errorf("the reload did not warn %q:\n%s", want, r.logs())
	}
}
