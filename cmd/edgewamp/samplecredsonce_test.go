package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestSampleCredentialWarnedOncePerProcess: a published sample credential
// is warned of at start and not again at each reload that keeps it (the
// warning repeated at every SIGHUP, as many lines each time as there are
// such credentials); one added by a reload is warned of once.
func TestSampleCredentialWarnedOncePerProcess(t *testing.T) {
	const alice = `    users:
      - authid: alice
        password: "pbkdf2-sha256$100000$32$0wIjr8Jx2IEjxYVpzdqkUQ$oTRavZt7KyAcaGvuUOAkwfpO3YtgDVJzmtS1agwFseU="
        role: r
    roles: [{name: r}]
`
	base := "realms:\n  - name: a.b\n    security: true\n    anonymous: false\n"
	path := writeFile(t, "c.yaml", base+alice)
	r := launch(t, exec.Command(binPath, "run", "-config", path, "-listen", "127.0.0.1:0"))
	r.waitLog("edgewamp started", 1)
	const said = "the password is the published sample's" // the log quotes the authid as \"alice\"
	if n := strings.Count(r.logs(), said); n != 1 {
		t.Fatalf("at start: %d warnings of alice's sample password, want 1:\n%s", n, r.logs())
	}
	for i := 1; i <= 2; i++ {
		r.cmd.Process.Signal(syscall.SIGHUP)
		r.waitLog("SIGHUP: configuration reloaded", i)
	}
	if n := strings.Count(r.logs(), said); n != 1 {
		t.Fatalf("after two reloads: %d warnings of alice's sample password, want 1:\n%s", n, grepLines(r.logs(), said))
	}
	// Another realm with the same credential: said once, at its reload.
	if err := os.WriteFile(path, []byte(base+alice+"  - name: c.d\n    security: true\n    anonymous: false\n"+alice), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 3; i <= 4; i++ {
		r.cmd.Process.Signal(syscall.SIGHUP)
		r.waitLog("SIGHUP: configuration reloaded", i)
	}
	if n := strings.Count(grepLines(r.logs(), `realm \"c.d\"`), said); n != 1 {
		t.Fatalf("a credential added by a reload: %d warnings, want 1:\n%s", n, grepLines(r.logs(), said))
	}
}
