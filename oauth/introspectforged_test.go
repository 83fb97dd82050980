package oauth

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

// TestIntrospectForgedTokensLeaveResourceServerServed guards affe82a's
// revert of 62f08c5: a resource server passes its callers' tokens on to
// /oauth/introspect, so forgeries there are its callers', not its own
// failures. With them counted, ten bit-flipped tokens from any caller
// locked the resource server out of every OAuth2 endpoint of its address
// for minutes (its introspection of a good token and its own
// client_credentials grant answered 429). Forgeries are answered
// inactive, each, and the resource server keeps being served.
func TestIntrospectForgedTokensLeaveResourceServerServed(t *testing.T) {
	e := startEnv(t, nil)
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("client_credentials: %d %v", st, body)
	}
	good := body["access_token"].(string)
	parts := strings.Split(good, ".")
	forge := func(i int) string {
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sig[i%len(sig)] ^= byte(1 + i/len(sig))
		return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	introspect := func(tok string) (int, map[string]any) {
		return e.post("/oauth/introspect", url.Values{"token": {tok}}, "backend", backendSec)
	}
	e.fresh()
	for i := 0; i < 30; i++ {
		if st, body := introspect(forge(i)); st != 200 || body["active"] != false {
			t.Fatalf("forged token %d introspected by the resource server: %d %v, want 200 inactive", i, st, body)
		}
	}
	if st, body := introspect(good); st != 200 || body["active"] != true {
		t.Fatalf("the resource server's introspection of a good token after 30 forgeries: %d %v, want 200 active", st, body)
	}
	if st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec); st != 200 {
		t.Fatalf("the resource server's own client_credentials after 30 forgeries: %d %v, want 200", st, body)
	}
}
