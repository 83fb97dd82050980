package oauth

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

// TestIntrospectForgedTokensCounted: /oauth/introspect answers a token
// under one of our key IDs whose signature does not verify {"active":
// false} after a signature check (~100 µs of CPU, not cached: only good
// tokens are), and a confidential client sending forgeries varied at will
// got one check each, uncounted. Such a forgery now counts as a failed
// attempt of its address, as at /oauth/revoke: past auth_failures' 10 the
// address is refused 429 before any check, and another address is not. A
// token naming a key the ring does not hold costs no check and is not
// counted; a good token introspected again and again is not either.
func TestIntrospectForgedTokensCounted(t *testing.T) {
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
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"gone","typ":"at+jwt"}`))
	for i := 0; i < 15; i++ {
		if st, body := introspect(hdr + "." + parts[1] + "." + parts[2]); st != 200 || body["active"] != false {
			t.Fatalf("a token of a key the ring does not hold, %d: %d %v, want 200 inactive", i, st, body)
		}
		if st, body := introspect(good); st != 200 || body["active"] != true {
			t.Fatalf("the good token, %d: %d %v, want 200 active", i, st, body)
		}
	}
	ok, refused := 0, 0
	for i := 0; i < 60; i++ {
		st, body := introspect(forge(i))
		switch {
		case st == 200 && body["active"] == false:
			ok++
		case st == 429:
			refused++
		default:
			t.Fatalf("forged token %d: %d %v", i, st, body)
		}
	}
	if ok > 10 || refused < 50 {
		t.Fatalf("60 forged tokens under our key introspected from one address: %d answered inactive (each a signature check), %d refused 429; want at most 10 checked", ok, refused)
	}
	e.fresh()
	if st, body := introspect(forge(0)); st != 200 || body["active"] != false {
		t.Fatalf("another address: %d %v, want 200 inactive", st, body)
	}
	if st, body := introspect(good); st != 200 || body["active"] != true {
		t.Fatalf("the good token from another address: %d %v, want 200 active", st, body)
	}
}
