package oauth

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

// The server verifies tokens of at most maxTokenLen (8 KiB) and refuses
// longer ones as malformed, like a forged token: a failed login that
// counts against the client's address. A client allowed many long scopes
// (70 of 120 characters, each a valid scope token) was issued a token of
// about 12 KB, which every WAMP login and gateway request then refused as
// "invalid access token", and ten such requests locked the client's
// address out. A token the server would refuse is not issued: the
// request fails, and the log says why.
func TestNoTokenIssuedThatTheServerRefuses(t *testing.T) {
	scopes := longScopes()
	e := startEnv(t, func(o *Options) { o.Realms[0].Clients[0].Scopes = scopes })
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
	if st == 200 {
		tok := body["access_token"].(string)
		_, err := e.srv.VerifyAccessToken(tok)
		t.Fatalf("issued a token of %d bytes, which the server itself refuses (%v)", len(tok), err)
	}
	if !strings.Contains(e.logs.String(), "too long") {
		t.Fatalf("refused (%d %v) without a log line saying why", st, body)
	}
	// A login (password grant, with a refresh token) refused so leaves no
	// family behind: one would count among alice's logins until it
	// expired, and evict a real one at the bound.
	st, body = e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}}, "backend", backendSec)
	if st != 400 || body["error"] != "invalid_scope" {
		t.Fatalf("a login whose token would be too long: %d %v", st, body)
	}
	if es, err := e.store.List(context.Background(), "rt."); err != nil || len(es) != 0 {
		t.Fatalf("refresh-token families left by the refused login: %d (%v)", len(es), err)
	}
	// Fewer scopes asked: issued, and verified.
	st, body = e.token(url.Values{"grant_type": {"client_credentials"}, "scope": {scopes[0]}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("one scope: %d %v", st, body)
	}
	if _, err := e.srv.VerifyAccessToken(body["access_token"].(string)); err != nil {
		t.Fatal(err)
	}
}
