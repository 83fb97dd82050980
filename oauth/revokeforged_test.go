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

// TestRevokeGuessedRefreshTokensCounted: a refresh token's form sent to
// /oauth/revoke by a public client cost a store read when the store did
// not hold it (answered 200, RFC 7009 §2.2), uncounted, as at the token
// endpoint before: now counted the same way, so that past auth_failures'
// 10 the address is refused 429 before any read. A confidential client's
// are not (a backend signing users out of ended logins).
func TestRevokeGuessedRefreshTokensCounted(t *testing.T) {
	rc := &readCounter{}
	e := startEnv(t, func(o *Options) {
		rc.Store = newMemStore(o.now)
		o.Store = rc
	})
	guess := func() string {
		b := make([]byte, refreshTokenLen)
		rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	refused := 0
	for i := 0; i < 40; i++ {
		switch st, body := e.post("/oauth/revoke", url.Values{"client_id": {"device"}, "token": {guess()}}, "", ""); st {
		case 200:
		case 429:
			refused++
		default:
			t.Fatalf("guess %d: %d %v", i, st, body)
		}
	}
	if n := rc.reads.Load(); n > 10 || refused < 30 {
		t.Fatalf("40 guessed refresh tokens revoked from one address: %d store reads, %d refused; want at most 10 reads", n, refused)
	}
	e.fresh()
	for i := 0; i < 15; i++ {
		if st, body := e.post("/oauth/revoke", url.Values{"token": {guess()}}, "backend", backendSec); st != 200 {
			t.Fatalf("the confidential backend's unknown refresh token %d: %d %v, want 200", i, st, body)
		}
	}
}
