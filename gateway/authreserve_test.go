package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// heldVerifier is a BearerVerifier whose checks are held until release
// closes, counting the checks it began; it accepts the token "good" (as
// alice of realm1) and refuses the others.
type heldVerifier struct {
	began   atomic.Int64
	release chan struct{}
}

func (v *heldVerifier) VerifyBearer(ctx context.Context, tok string) (*Principal, error) {
	v.began.Add(1)
	select {
	case <-v.release:
	case <-ctx.Done():
	}
	if tok == "good" {
		return &Principal{Realm: "realm1", AuthID: "alice", AuthRole: "user"}, nil
	}
	return nil, errors.New("token rejected")
}

// concurrentBearers sends n requests with the bearer token tok at once;
// once every one is being checked, waiting for a place or answered, it
// lets the checks end and returns the answers' status codes.
func concurrentBearers(t *testing.T, e *env, v *heldVerifier, n int, tok string) map[int]int {
	t.Helper()
	var (
		wg       sync.WaitGroup
		answered atomic.Int64
		mu       sync.Mutex
		codes    = map[int]int{}
		once     sync.Once
	)
	release := func() { once.Do(func() { close(v.release) }) }
	defer release()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer answered.Add(1)
			req, _ := http.NewRequest("POST", e.base+"/wamp/realm1/publish/com.t", strings.NewReader(`{}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := e.hc.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	waitFor(t, "every request checked, waiting or answered", func() bool {
		return v.began.Load()+int64(waitingPlaces(e.gw))+answered.Load() >= int64(n)
	})
	release()
	wg.Wait()
	return codes
}

// TestAuthFailureLimitConcurrent: one address's concurrent requests with
// wrong credentials get no more of them checked than Limits.AuthFailures;
// the others wait for a place, and are answered 429 unchecked once those
// checks' failures lock the address out. Before, each failure was counted
// only when its check ended, so all 20 were checked (20 guesses against a
// limit of 5).
func TestAuthFailureLimitConcurrent(t *testing.T) {
	const limit, n = 5, 20
	v := &heldVerifier{release: make(chan struct{})}
	e := newEnv(t, func(o *Options) {
		o.Limits.AuthFailures = limit
		o.Bearer = v
	})
	codes := concurrentBearers(t, e, v, n, "guess")
	if got := v.began.Load(); got > limit {
		t.Errorf("%d credentials of one address checked, limit %d", got, limit)
	}
	if codes[http.StatusUnauthorized] != limit || codes[http.StatusTooManyRequests] != n-limit {
		t.Errorf("answers %v, want %d×401 and %d×429", codes, limit, n-limit)
	}
	// The address is now locked out: a further request is not checked.
	before := v.began.Load()
	r, body := e.do("POST", "/wamp/realm1/publish/com.t", `{}`, "Authorization", "Bearer guess")
	expectProblem(t, r, body, 429, URITooManyRequests)
	if v.began.Load() != before {
		t.Error("a locked-out address's credential was checked")
	}
}

// TestAuthPlacesGoodCredentialsWait: one address's concurrent requests
// with a good credential, more than Limits.AuthFailures, are all served:
// those beyond the places wait for one rather than being refused, so a
// busy client (or the proxy every client comes through) is not answered
// 429 for checks that overlap; nothing is left in the limiter after.
func TestAuthPlacesGoodCredentialsWait(t *testing.T) {
	const limit, n = 2, 12
	v := &heldVerifier{release: make(chan struct{})}
	e := newEnv(t, func(o *Options) {
		o.Limits.AuthFailures = limit
		o.Bearer = v
	})
	codes := concurrentBearers(t, e, v, n, "good")
	if got := v.began.Load(); got != n {
		t.Errorf("%d checks, want %d", got, n)
	}
	if codes[http.StatusAccepted] != n {
		t.Errorf("answers %v, want %d×202", codes, n)
	}
	waitFor(t, "no record left", func() bool {
		e.gw.limiter.mu.Lock()
		defer e.gw.limiter.mu.Unlock()
		return len(e.gw.limiter.byAddr) == 0
	})
}

// TestAuthFailureLimitCall: calls with a wrong API key (which the event
// loops' HTTP lane serves, whose checks may not wait for a place) count
// their failures as requests on net/http do: past Limits.AuthFailures the
// address is answered 429, its good key unchecked.
func TestAuthFailureLimitCall(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.AuthFailures = 3
		o.APIKeys = []APIKey{{Name: "k", Key: "good-key-0123456789", Realm: "realm1", AuthID: "u", Role: "r"}}
	})
	for i := 0; i < 3; i++ {
		r, body := e.do("POST", "/wamp/realm1/call/com.x", `{}`, "X-API-Key", "guess-0123456789")
		expectProblem(t, r, body, 401, proto.URIAuthenticationRequired)
	}
	r, body := e.do("POST", "/wamp/realm1/call/com.x", `{}`, "X-API-Key", "good-key-0123456789")
	expectProblem(t, r, body, 429, URITooManyRequests)
	if e.lane && e.laneServed.Load() != 4 {
		t.Errorf("the event loops' lane served %d of the 4 calls", e.laneServed.Load())
	}
	e.gw.limiter.mu.Lock()
	defer e.gw.limiter.mu.Unlock()
	for a, w := range e.gw.limiter.byAddr {
		if w.checking != 0 || len(w.waiting) != 0 {
			t.Errorf("%s: %d checking, %d waiting after every answer", a, w.checking, len(w.waiting))
		}
	}
}
