package oauth

import (
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

// TestRevokeForgedTokensCounted: /oauth/revoke answers 200 to a token that
// is not ours (RFC 7009 §2.2), and a token under one of our key IDs with a
// bad signature got a signature check (~100 µs of CPU, uncached) each
// time, from anyone: the public clients need no secret. Such a forgery now
// counts as a failed attempt of its address: past auth_failures' 10 the
// address is refused 429 before any check, and another address is not. A
// token naming a key the ring does not hold (a key gone after its tokens
// lived, a ring lost) costs no check and is not counted.
func TestRevokeForgedTokensCounted(t *testing.T) {
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
	e.fresh()
	// Another kid: no key to check it with.
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"gone","typ":"at+jwt"}`))
	for i := 0; i < 15; i++ {
		if st, body := e.post("/oauth/revoke", url.Values{"client_id": {"device"}, "token": {hdr + "." + parts[1] + "." + parts[2]}}, "", ""); st != 200 {
			t.Fatalf("a token of a key the ring does not hold, %d: %d %v, want 200", i, st, body)
		}
	}
	ok, refused := 0, 0
	for i := 0; i < 60; i++ {
		st, body := e.post("/oauth/revoke", url.Values{"client_id": {"device"}, "token": {forge(i)}}, "", "")
		switch st {
		case 200:
			ok++
		case 429:
			refused++
		default:
			t.Fatalf("forged token %d: %d %v", i, st, body)
		}
	}
	if ok > 10 || refused < 50 {
		t.Fatalf("60 forged tokens under our key from one address: %d answered 200 (each a signature check), %d refused 429; want at most 10 checked", ok, refused)
	}
	e.fresh()
	if st, body := e.post("/oauth/revoke", url.Values{"client_id": {"device"}, "token": {forge(0)}}, "", ""); st != 200 {
		t.Fatalf("another address: %d %v, want 200", st, body)
	}
	// The real token is still revoked by its client.
	if st, body := e.post("/oauth/revoke", url.Values{"token": {good}}, "backend", backendSec); st != 200 {
		t.Fatalf("revoking the real token: %d %v", st, body)
	}
	if _, err := e.srv.VerifyAccessToken(good); err != ErrTokenRevoked {
		t.Fatalf("the revoked token: %v, want ErrTokenRevoked", err)
	}
}

// TestRevokeUnknownRefreshTokensNotCounted: a refresh token's form the
// store does not hold, sent to /oauth/revoke by a public client, is
// answered 200 (RFC 7009 §2.2) and not counted as a failed attempt of its
// address: most often a login ended (expired, signed out) being signed out
// again (TestExpiredRefreshTokensDoNotLockOutAddress); counted (93a5137),
// a NAT's sign-outs locked out its logins. A guess costs a store read.
func TestRevokeUnknownRefreshTokensNotCounted(t *testing.T) {
	e := startEnv(t, nil)
	guess := func() string {
		b := make([]byte, refreshTokenLen)
		rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	for i := 0; i < 15; i++ {
		if st, body := e.post("/oauth/revoke", url.Values{"client_id": {"device"}, "token": {guess()}}, "", ""); st != 200 {
			t.Fatalf("the public client's unknown refresh token %d: %d %v, want 200", i, st, body)
		}
	}
	for i := 0; i < 15; i++ {
		if st, body := e.post("/oauth/revoke", url.Values{"token": {guess()}}, "backend", backendSec); st != 200 {
			t.Fatalf("the confidential backend's unknown refresh token %d: %d %v, want 200", i, st, body)
		}
	}
}
