package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedReads is the memory store whose reads of refresh token families
// wait at a gate until the test opens it (or 10 s), counting them.
type gatedReads struct {
	Store
	gate  chan struct{}
	reads atomic.Int64
}

func (g *gatedReads) Get(ctx context.Context, key string) (Entry, error) {
	if strings.HasPrefix(key, "rt.") {
		g.reads.Add(1)
		select {
		case <-g.gate:
		case <-time.After(10 * time.Second):
		}
	}
	return g.Store.Get(ctx, key)
}

// TestParallelGuessesBounded: a public client's guessed refresh tokens
// were counted after their store read, without a reservation: 64 sent at
// once from one address all passed the lockout check, and all 64 were
// read from the store before the first was counted (each a round trip to
// a shared store on a mesh), where wrong secrets are bounded by the
// limiter's reservations to auth_failures' 10 checked at a time. A public
// client's request now reserves its place too: at most 10 are read at a
// time and the others are refused 429 at once; the same client's requests
// one after another, and from another address, are served as before.
func TestParallelGuessesBounded(t *testing.T) {
	gs := &gatedReads{gate: make(chan struct{})}
	e := startEnv(t, func(o *Options) {
		gs.Store = newMemStore(o.now)
		o.Store = gs
	})
	guess := func() string {
		b := make([]byte, refreshTokenLen)
		rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	const n = 64
	var answered, refused, invalid atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body := e.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {"device"}, "refresh_token": {guess()}}, "", "")
			switch {
			case st == 429:
				refused.Add(1)
			case st == 400 && body["error"] == "invalid_grant":
				invalid.Add(1)
			default:
				t.Errorf("guess: %d %v", st, body)
			}
			answered.Add(1)
		}()
	}
	// Every request either waits at the gate (read) or is answered.
	deadline := time.Now().Add(20 * time.Second)
	for gs.reads.Load()+answered.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	reads := gs.reads.Load()
	close(gs.gate)
	wg.Wait()
	if reads > 10 {
		t.Fatalf("%d guessed refresh tokens sent at once from one address: %d read from the store at once (%d refused 429 before any read, %d invalid_grant); want at most auth_failures' 10", n, reads, refused.Load(), invalid.Load())
	}
	if refused.Load() < n-10 {
		t.Fatalf("%d refused 429 of %d, want at least %d", refused.Load(), n, n-10)
	}
	// A served request holds its place only while it runs: it leaves no
	// record behind.
	records := func() int {
		e.srv.limit.mu.Lock()
		defer e.srv.limit.mu.Unlock()
		return len(e.srv.limit.m)
	}
	before := records()
	e.fresh()
	if st, body := e.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {"device"}}, "", ""); st != 400 || body["error"] != "invalid_request" {
		t.Fatalf("a refresh without its token: %d %v, want 400 invalid_request", st, body)
	}
	if n := records(); n != before {
		t.Fatalf("a public client's request that was no guess left %d records, want %d", n, before)
	}
	// Another address; and guesses one at a time are counted as before.
	e.fresh()
	for i := 0; i < 3; i++ {
		if st, body := e.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {"device"}, "refresh_token": {guess()}}, "", ""); st != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("another address, guess %d: %d %v, want 400 invalid_grant", i, st, body)
		}
	}
}
