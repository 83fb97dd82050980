package oauth

import (
	"net/url"
	"testing"
	"time"
)

// TestRateLimitWindowEdge: the OAuth2 endpoints' failures are counted over
// a sliding window, as the WAMP authenticators' are: one failure, eight
// more 59 s later and nine at 61 s (18 within two seconds) lock the
// address out by the second of the last nine. Before, the count started
// again at the window's end and all 18 were checked without a lockout.
// Failures at the rate the limit allows (one every 7 s, under 10 a
// minute) still never lock out.
func TestRateLimitWindowEdge(t *testing.T) {
	e := startEnv(t, nil)
	fail := func() int {
		t.Helper()
		st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", "guess")
		if st != 401 && st != 429 {
			t.Fatalf("a wrong client secret: %d %v", st, body)
		}
		return st
	}
	if fail() != 401 {
		t.Fatal("refused at the first failure")
	}
	e.clock.Advance(59 * time.Second)
	for i := range 8 {
		if st := fail(); st != 401 {
			t.Fatalf("failure %d of the first window: %d", i+2, st)
		}
	}
	e.clock.Advance(2 * time.Second)
	checked := 0
	for range 9 {
		if fail() == 429 {
			break
		}
		checked++
	}
	if checked == 9 || checked > 2 {
		t.Fatalf("9 failures at a window's end, then 9 at the next one's start: %d of the second nine checked, want at most 2", checked)
	}
	// Locked out: the right secret is refused too.
	if st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec); st != 429 {
		t.Fatalf("the right secret after the lockout: %d %v, want 429", st, body)
	}

	// Another address, one failure every 7 s (8.6 a minute): never refused.
	e.fresh()
	for i := range 40 {
		if st := fail(); st != 401 {
			t.Fatalf("failure %d at one every 7 s: %d", i+1, st)
		}
		e.clock.Advance(7 * time.Second)
	}
	if st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec); st != 200 {
		t.Fatalf("the right secret after failures at one every 7 s: %d %v", st, body)
	}
}
