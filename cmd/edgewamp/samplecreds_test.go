package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/route"
)

// TestSampleCredentialsWarned (found by the review of the configuration
// as an operator making mistakes): deploy/secure.yaml, README's
// "complete, copyable example", publishes its credentials (alice's
// password "change-me-alice", with the roles operator and admin; the
// historian client's secret; the dashboard's WAMP-CRA secret in its
// header). A copy that kept them passed check-config and ran without a
// word, and anyone who read the sample could log in as its admin.
// check-config (and run, and a reload) now warn of each, naming it; a
// credential of the operator's own draws nothing. The list of published
// hashes is kept in step with the sample here.
func TestSampleCredentialsWarned(t *testing.T) {
	sample, err := os.ReadFile("../../deploy/secure.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Every hash the sample publishes is known, with its password (the
	// sample's comments name them).
	hashes := regexp.MustCompile(`"(pbkdf2-sha256\$[^"]+)"`).FindAllStringSubmatch(string(sample), -1)
	if len(hashes) < 2 {
		t.Fatalf("found %d hashes in deploy/secure.yaml", len(hashes))
	}
	for _, h := range hashes {
		pw := samplePassword(h[1])
		p, err := route.ParsePassword(h[1])
		if pw == "" || err != nil || !p.Verify(pw) {
			t.Fatalf("deploy/secure.yaml's hash %s is not listed in samplePasswordKeys with its password (%q, %v)", h[1], pw, err)
		}
	}
	t.Setenv("EDGEWAMP_DASHBOARD_SECRET", "change-me-dashboard")
	_, e, code := runCLI("check-config", writeFile(t, "secure.yaml", string(sample)))
	var missing []string
	for _, want := range []string{
		`authid "alice"): the password is the published sample's ("change-me-alice")`,
		`authid "dashboard"): the WAMP-CRA secret starts with "change-me"`,
		`client "historian"): the secret is the published sample's ("change-me-historian")`,
	} {
		if !strings.Contains(e, want) {
			missing = append(missing, want)
		}
	}
	if code != 0 || len(missing) > 0 {
		t.Fatalf("check-config of the sample as shipped: exit %d, missing %q:\n%s", code, missing, e)
	}
	// The operator's own credentials: no such warning.
	var o strings.Builder
	in := writeFile(t, "pw", "a password of my own\n")
	f, _ := os.Open(in)
	defer f.Close()
	if code := cmdPasswd([]string{"-iterations", "1000"}, f, &o, &strings.Builder{}); code != 0 {
		t.Fatal("passwd failed")
	}
	own := regexp.MustCompile(`pbkdf2-sha256\$[^"]+`).FindString(o.String())
	mine := regexp.MustCompile(`pbkdf2-sha256\$[^"]+`).ReplaceAllLiteralString(string(sample), own)
	t.Setenv("EDGEWAMP_DASHBOARD_SECRET", "a secret of my own, long enough")
	if _, e, code := runCLI("check-config", writeFile(t, "mine.yaml", mine)); code != 0 || strings.Contains(e, "published sample") || strings.Contains(e, "change-me") {
		t.Fatalf("check-config with the operator's own credentials: exit %d:\n%s", code, e)
	}
}
