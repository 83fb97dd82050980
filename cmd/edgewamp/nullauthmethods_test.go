package main

import (
	"strings"
	"testing"
)

// TestNullAuthmethodsRefused: `authmethods: []` is refused (a realm takes
// at least one method), but a key left with no value, as when every
// method of the list is commented out, decodes as no list at all, and
// opened the realm it was written to close: anonymous sessions, with
// every permission, in a realm without users; check-config said ok, and
// a SIGHUP took it. It is refused as the empty list is.
func TestNullAuthmethodsRefused(t *testing.T) {
	for _, body := range []string{
		"realms:\n  - name: r\n    authmethods:\n",
		"realms:\n  - name: r\n    authmethods:\n    #  - ticket\n    uri_check: strict\n",
		"realms:\n  - name: r\n    authmethods: ~\n",
	} {
		p := writeFile(t, "c.yaml", body)
		_, e, code := runCLI("check-config", p)
		if want := "realms[0].authmethods is empty: a realm takes at least one method"; code != 1 || !strings.Contains(e, want) {
			t.Errorf("%q: check-config exit %d, want 1 and %q: %s", body, code, want, e)
		}
	}
	// Left out, the key is the users' methods (anonymous without users).
	p := writeFile(t, "c.yaml", "realms:\n  - name: r\n    uri_check: strict\n")
	if _, e, code := runCLI("check-config", p); code != 0 {
		t.Errorf("a realm without authmethods: check-config exit %d: %s", code, e)
	}
}
