package main

import (
	"strings"
	"testing"
)

// TestEmptyAuthmethodsRefused: realms[].authmethods restricts a realm's
// logins to the methods it lists (README: "restrict to some of"), and an
// empty list was taken as no list at all: `authmethods: []`, written to
// let no one in (a realm being retired, say), left the methods to the
// default, so a realm without users took anonymous sessions, with every
// permission, and one with users their logins; check-config said ok. It
// is refused, saying what to write.
func TestEmptyAuthmethodsRefused(t *testing.T) {
	for _, body := range []string{
		"realms:\n  - name: r\n    authmethods: []\n",
		"realms:\n  - name: r\n    security: true\n    roles: [{name: u}]\n    users: [{authid: a, role: u, secret: \"0123456789abcdef0123\"}]\n    authmethods: []\n",
	} {
		p := writeFile(t, "c.yaml", body)
		_, e, code := runCLI("check-config", p)
		if want := "realms[0].authmethods is empty: a realm takes at least one method"; code != 1 || !strings.Contains(e, want) {
			t.Errorf("%q: check-config exit %d, want 1 and %q: %s", body, code, want, e)
		}
	}
}
