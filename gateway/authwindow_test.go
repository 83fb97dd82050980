package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// limiterClock is a clock the failed-authentication limiter reads, moved
// on by the test.
type limiterClock struct{ ns atomic.Int64 }

func (c *limiterClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *limiterClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *limiterClock) set(g *Server, t time.Time) {
	c.ns.Store(t.UnixNano())
	setLimiterClock(g, c.now)
}

// setLimiterClock makes g's limiter read now, from now on (under its
// lock, as the limiter reads it).
func setLimiterClock(g *Server, now func() time.Time) {
	g.limiter.mu.Lock()
	defer g.limiter.mu.Unlock()
	g.limiter.now, g.limiter.origin = now, now()
}

// refusingVerifier accepts the token "good" (alice of realm1) and refuses
// the others, at once.
type refusingVerifier struct{ checked atomic.Int64 }

func (v *refusingVerifier) VerifyBearer(_ context.Context, tok string) (*Principal, error) {
	v.checked.Add(1)
	if tok == "good" {
		return &Principal{Realm: "realm1", AuthID: "alice", AuthRole: "user"}, nil
	}
	return nil, errors.New("token rejected")
}

// TestAuthFailureLimitSlides: the gateway's failed authentications are
// counted over a sliding minute, as the WAMP and OAuth2 limiters count
// theirs: one failure, eight more 59 s later and nine at 61 s (18 within
// two seconds, at a limit of 10) have at most two of the last nine
// checked before the address is answered 429. Before, the count started
// again a minute after the window's first failure, and all 18 were
// checked: twice the limit across the boundary. Failures at the rate the
// limit allows (one every 7 s, under 10 a minute) are never refused, and
// a good token is served again once the count has slid below the limit.
func TestAuthFailureLimitSlides(t *testing.T) {
	const limit = 10
	v := &refusingVerifier{}
	e := newEnv(t, func(o *Options) {
		o.Limits.AuthFailures = limit
		o.Bearer = v
	})
	clk := &limiterClock{}
	clk.set(e.gw, time.Unix(1_800_000_000, 0))
	bearer := func(tok string) int {
		t.Helper()
		r, _ := e.do("POST", "/wamp/realm1/publish/com.t", `{}`, "Authorization", "Bearer "+tok)
		if r.StatusCode != http.StatusUnauthorized && r.StatusCode != http.StatusTooManyRequests && r.StatusCode != http.StatusAccepted {
			t.Fatalf("bearer %q: %d", tok, r.StatusCode)
		}
		return r.StatusCode
	}
	if st := bearer("guess"); st != 401 {
		t.Fatalf("the first failure: %d", st)
	}
	clk.advance(59 * time.Second)
	for i := range 8 {
		if st := bearer("guess"); st != 401 {
			t.Fatalf("failure %d of the first minute: %d", i+2, st)
		}
	}
	clk.advance(2 * time.Second)
	before := v.checked.Load()
	for range 9 {
		if bearer("guess") == 429 {
			break
		}
	}
	if checked := v.checked.Load() - before; checked > 2 {
		t.Fatalf("9 failures at a minute's end, then 9 at the next one's start: %d of the second nine checked, want at most 2 (limit %d)", checked, limit)
	}
	if st := bearer("good"); st != 429 {
		t.Fatalf("a good token right after: %d, want 429", st)
	}
	// Two minutes on, everything has slid out: the good token is served.
	clk.advance(2 * time.Minute)
	if st := bearer("good"); st != 202 {
		t.Fatalf("a good token two minutes later: %d, want 202", st)
	}

	// One failure every 7 s (8.6 a minute) for almost five minutes: never
	// refused.
	for i := range 40 {
		clk.advance(7 * time.Second)
		if st := bearer("guess"); st != 401 {
			t.Fatalf("failure %d at one every 7 s: %d", i+1, st)
		}
	}
}

// TestAuthFailureLockoutRetryAfter: a locked-out address's 429 says in
// Retry-After when its failures will have slid below the limit, and a
// good token is served then. Before, it said 1 s while the address
// stayed refused for up to a minute (here about 60 s): a client honouring
// it was refused again at each retry.
func TestAuthFailureLockoutRetryAfter(t *testing.T) {
	const limit = 10
	v := &refusingVerifier{}
	e := newEnv(t, func(o *Options) {
		o.Limits.AuthFailures = limit
		o.Bearer = v
	})
	clk := &limiterClock{}
	clk.set(e.gw, time.Unix(1_800_000_000, 0))
	bearer := func(tok string) (int, string) {
		t.Helper()
		r, _ := e.do("POST", "/wamp/realm1/publish/com.t", `{}`, "Authorization", "Bearer "+tok)
		return r.StatusCode, r.Header.Get("Retry-After")
	}
	for i := range limit {
		if st, _ := bearer("guess"); st != 401 {
			t.Fatalf("failure %d: %d", i+1, st)
		}
	}
	clk.advance(time.Second)
	st, ra := bearer("good")
	if st != 429 {
		t.Fatalf("a good token after %d failures: %d, want 429", limit, st)
	}
	secs, err := strconv.Atoi(ra)
	if err != nil || secs < 1 || secs > 120 {
		t.Fatalf("Retry-After %q, want whole seconds in 1..120", ra)
	}
	clk.advance(time.Duration(secs) * time.Second)
	if st, ra2 := bearer("good"); st != 202 {
		t.Fatalf("a good token %d s later, as Retry-After %q said: %d (Retry-After %q), want 202", secs, ra, st, ra2)
	}
}
