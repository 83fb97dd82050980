package oauth

import (
	"net/url"
	"testing"
	"time"
)

// TestAccessTokenLivesItsExpiresIn: a token's exp is in whole seconds,
// and was its expiry truncated: one issued at x.999 s with a lifetime of
// 1 s lived a millisecond, though expires_in said 1, and any token lived
// up to a second less than expires_in (a client refreshing when it says
// got 401s meanwhile). It lives at least its expires_in now.
func TestAccessTokenLivesItsExpiresIn(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		for i := range o.Realms {
			o.Realms[i].AccessTokenLifetime = time.Second
		}
	})
	e.clock.Advance(999 * time.Millisecond) // the clock starts on a whole second
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("token: %d %v", st, body)
	}
	in := time.Duration(body["expires_in"].(float64)) * time.Second
	if in < time.Second {
		t.Fatalf("expires_in %v for a lifetime of 1 s", in)
	}
	e.clock.Advance(in - time.Millisecond)
	if _, err := e.srv.VerifyAccessToken(body["access_token"].(string)); err != nil {
		t.Fatalf("the token %v after it was issued with expires_in %v: %v", in-time.Millisecond, in, err)
	}
}
