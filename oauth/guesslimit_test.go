package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// readCounter is the memory store, counting its reads of keys under the
// prefixes a guessed code or token makes the server read.
type readCounter struct {
	Store
	reads atomic.Int64
}

func (c *readCounter) Get(ctx context.Context, key string) (Entry, error) {
	if strings.HasPrefix(key, "ac.") || strings.HasPrefix(key, "rt.") || strings.HasPrefix(key, "dc.") {
		c.reads.Add(1)
	}
	return c.Store.Get(ctx, key)
}

// TestGuessedCodesAndTokensCounted: an unknown authorization code or
// device code (a guess) cost a store read each, and nothing counted them:
// one address could send them without end, each a round trip to a shared
// store on a mesh. They now count as failed attempts of their address, as
// a wrong secret does: past auth_failures' BlockAfter (10) the address is
// refused 429 before any read, and another address is not. An unknown
// refresh token is not counted (a login ended reads so too:
// TestExpiredRefreshTokensDoNotLockOutAddress), nor a confidential
// client's unknown tokens (sent with its secret: most often logins ended
// meanwhile), so that a backend holding many users' refresh tokens does
// not lock itself out. A known token still works from an address with a
// few failures.
func TestGuessedCodesAndTokensCounted(t *testing.T) {
	rc := &readCounter{}
	e := startEnv(t, func(o *Options) {
		rc.Store = newMemStore(o.now)
		o.Store = rc
	})
	guessRT := func() string {
		b := make([]byte, refreshTokenLen)
		rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	forms := []url.Values{
		{"grant_type": {"authorization_code"}, "client_id": {"dashboard"}, "code": {"guess"}, "code_verifier": {strings.Repeat("v", 43)}},
		{"grant_type": {deviceGrantType}, "client_id": {"device"}, "device_code": {"guess"}},
	}
	refused := 0
	for i := 0; i < 60; i++ {
		st, body := e.token(forms[i%2], "", "")
		switch st {
		case 400:
			wantOAuthError(t, st, body, 400, "invalid_grant")
		case 429:
			refused++
		default:
			t.Fatalf("guess %d: %d %v", i, st, body)
		}
	}
	if n := rc.reads.Load(); n > 10 || refused < 50 {
		t.Fatalf("60 guesses from one address: %d store reads, %d refused 429; want at most 10 reads (auth_failures' 10), the rest refused", n, refused)
	}
	e.fresh()
	var st int
	var body map[string]any
	for i := 0; i < 15; i++ {
		st, body = e.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {"device"}, "refresh_token": {guessRT()}}, "", "")
		wantOAuthError(t, st, body, 400, "invalid_grant")
	}
	e.fresh()
	st, body = e.token(forms[0], "", "")
	wantOAuthError(t, st, body, 400, "invalid_grant")
	// A known refresh token from an address with one failure still refreshes.
	tok, err := e.config("backend", backendSec, "read").PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	st, body = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("a refresh with a known token after one guess: %d %v", st, body)
	}
	for i := 0; i < 15; i++ {
		st, body := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {guessRT()}}, "backend", backendSec)
		wantOAuthError(t, st, body, 400, "invalid_grant")
	}
}
