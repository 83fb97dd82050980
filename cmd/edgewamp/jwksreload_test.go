package main

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestJWKSKeysReloadedOnSIGHUP (found by the review of the reload as an
// attacker): gateway.bearer.jwks_file was read at start only. A SIGHUP
// read it again, to check it, and said "configuration reloaded", but the
// gateway went on verifying with the start's keys: after an issuer's key
// rotation written to the file every token of the new key was refused
// 401 until a restart, and a leaked key taken out of the file went on
// being trusted (its tokens, cached, until they expired), without a word
// (the file's path had not changed, so no restart warning either). Now
// the file is re-read on SIGHUP as the TLS certificates are: the new set
// is in use once the reload is logged, and the tokens verified so far are
// forgotten.
func TestJWKSKeysReloadedOnSIGHUP(t *testing.T) {
	old := newJWKS(t)
	g := startJWKSBridge(t, old)
	oldTok := old.signed(t, "at+jwt", map[string]any{"aud": []string{"wamp:realm1"}})
	if st, body := publishAs(t, g, "realm1", oldTok); st/100 != 2 {
		t.Fatalf("a token of the configured key: %d %s", st, body)
	}
	// The issuer rotates: its new key alone in the file (the old one
	// leaked, say), the configuration unchanged.
	rotated := newJWKS(t)
	b, err := os.ReadFile(rotated.file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old.file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	yml, err := os.ReadFile(g.file)
	if err != nil {
		t.Fatal(err)
	}
	g.reload(string(yml))
	newTok := rotated.signed(t, "at+jwt", map[string]any{"aud": []string{"wamp:realm1"}})
	var bad []string
	if st, body := publishAs(t, g, "realm1", newTok); st/100 != 2 {
		bad = append(bad, "a token of the file's new key: "+http.StatusText(st)+" "+body+", want it accepted")
	}
	if st, body := publishAs(t, g, "realm1", oldTok); st != http.StatusUnauthorized {
		bad = append(bad, "the removed key's token (verified before the reload): "+http.StatusText(st)+" "+body+", want 401")
	}
	if len(bad) > 0 {
		t.Fatalf("after a SIGHUP with the key set file rotated:\n%s\n%s", strings.Join(bad, "\n"), lastLines(g.logs(), 4))
	}
	if !strings.Contains(g.logs(), "gateway.bearer.jwks_file reloaded") {
		t.Fatalf("no log line for the new key set:\n%s", lastLines(g.logs(), 4))
	}
}
