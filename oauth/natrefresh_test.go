package oauth

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowReads is a store whose reads of refresh token families take d, as
// a round trip to a mesh's shared store does.
type slowReads struct {
	Store
	d         time.Duration
	now, most atomic.Int64 // reads in progress, and the most at once
}

func (s *slowReads) Get(ctx context.Context, key string) (Entry, error) {
	if strings.HasPrefix(key, "rt.") {
		n := s.now.Add(1)
		for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
		}
		time.Sleep(s.d)
		s.now.Add(-1)
	}
	return s.Store.Get(ctx, key)
}

// TestHonestRefreshesAtOnceFromOneAddress: since 76168da a public
// client's request holds a place among its address's attempts while it
// runs, bounding parallel guesses to auth_failures' 10; the 11th honest
// request at once from one address (an office's NAT, a carrier's CGNAT:
// the browsers and apps of a public client) was refused 429, where before
// none was. A request finding its address's places taken by requests in
// progress (not by failures) now waits for one, up to a second: 30
// browsers refreshing at once over a store answering in 20 ms are all
// served, still at most 10 read at a time.
func TestHonestRefreshesAtOnceFromOneAddress(t *testing.T) {
	sr := &slowReads{}
	e := startEnv(t, func(o *Options) {
		sr.Store, sr.d = newMemStore(o.now), 20*time.Millisecond
		o.Store = sr
		for i := range o.Realms {
			o.Realms[i].MaxRefreshTokens = 100 // bob's 30 logins, one a browser
		}
	})
	const n = 30
	var rts []string
	for i := 0; i < n; i++ {
		e.fresh()
		e.clock.Advance(3 * time.Minute) // the per-user sign-in bound
		st, body := e.token(e.codeRedemption(newBrowser(t)), "", "")
		if st != 200 {
			t.Fatalf("login %d: %d %v", i, st, body)
		}
		rts = append(rts, body["refresh_token"].(string))
	}
	e.fresh() // one address (a NAT) for every browser
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for _, rt := range rts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _ := e.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {"dashboard"}, "refresh_token": {rt}}, "", "")
			mu.Lock()
			codes[st]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != n {
		t.Fatalf("%d honest refreshes of a public client at once from one address: statuses %v, want %d × 200", n, codes, n)
	}
	if m := sr.most.Load(); m > 10 {
		t.Fatalf("%d refresh token families read at once from one address, want at most auth_failures' 10", m)
	}
}
