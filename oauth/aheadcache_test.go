package oauth

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

// TestAheadTokenCheckedOnce: a genuine access token issued ahead of the
// clock by more than the skew (ErrTokenAhead) is refused uncounted, at a
// WAMP login and at the gateway (gateway.ErrBearerStale), so it must not
// cost a signature check at each use: it was not cached, and one such
// token sent again and again cost ~100 µs of CPU a request, never counted,
// never locked out (a forged one is counted and refused from its 31st
// request). It is kept, its iat checked at each use from the cache, taken
// once the clock reaches it, and refused once revoked.
func TestAheadTokenCheckedOnce(t *testing.T) {
	e := startEnv(t, nil)
	at := e.cliToken("alice", alicePW)
	e.clock.Advance(-2 * time.Minute) // the system clock steps back
	for i := range 3 {
		if _, err := e.srv.VerifyAccessToken(at); !errors.Is(err, ErrTokenAhead) {
			t.Fatalf("use %d of a token issued 2 minutes ahead: %v, want %v", i+1, err, ErrTokenAhead)
		}
	}
	if n := e.srv.cache.len(); n != 1 {
		t.Fatalf("%d tokens cached after checking one issued ahead, want 1 (each use checked its signature again)", n)
	}
	e.clock.Advance(90 * time.Second) // within the skew of its iat
	c, err := e.srv.VerifyAccessToken(at)
	if err != nil || c.Subject != "alice" {
		t.Fatalf("the token once the clock reached it: %v %v, want it taken", c, err)
	}
	if st, body := e.post("/oauth/revoke", url.Values{"token": {at}, "client_id": {"cli"}}, "", ""); st != 200 {
		t.Fatalf("revoke: %d %v", st, body)
	}
	if _, err := e.srv.VerifyAccessToken(at); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("the token revoked: %v, want %v", err, ErrTokenRevoked)
	}
}
