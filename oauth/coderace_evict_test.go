package oauth

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// updateBarrier is a Store that holds each Update of a key under prefix
// until n of them wait, or a second has passed: requests racing each
// other all get there before any goes on.
type updateBarrier struct {
	Store
	prefix string
	n      int
	mu     sync.Mutex
	armed  bool // held only once armed
	count  int
	open   chan struct{}
}

func (s *updateBarrier) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	s.mu.Lock()
	armed := s.armed
	s.mu.Unlock()
	if armed && strings.HasPrefix(key, s.prefix) {
		s.mu.Lock()
		s.count++
		if s.count == s.n {
			close(s.open)
		}
		s.mu.Unlock()
		select {
		case <-s.open:
		case <-time.After(time.Second):
		}
	}
	return s.Store.Update(ctx, key, value, rev, ttl)
}

// Redemptions of one authorization code sent at once used to each make
// a login before any of them marked the code: each was indexed among the
// user's logins, which at max_refresh_tokens ended her oldest other login,
// and only then did the losers find the code used (and end the winner's
// login as a reuse). Eight at once ended all three of bob's earlier
// logins (the code's writes held until all eight get there, as a slow
// store or two busy cores may). A redemption now claims the code before it makes the login: the
// others find it used, end what the first got and make nothing, so that
// at most one earlier login ends (the first redemption's own eviction).
func TestCodeRedemptionsAtOnceEndNoOtherLogin(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			const bound, n = 3, 8
			cb := &updateBarrier{prefix: "ac.", n: n, open: make(chan struct{})}
			e := startEnv(t, func(o *Options) {
				cb.Store = sk.open(t, o.now)
				o.Store = cb
				o.Realms[0].MaxRefreshTokens = bound
			})
			br := newBrowser(t)
			var earlier []string // bob's refresh tokens of his earlier logins
			for range bound {
				st, body := e.token(e.codeRedemption(br), "", "")
				if st != 200 {
					t.Fatalf("bob's login: %d %v", st, body)
				}
				earlier = append(earlier, body["refresh_token"].(string))
			}
			form := e.codeRedemption(br)
			cb.mu.Lock()
			cb.armed = true // for the redemptions below only
			cb.mu.Unlock()
			var wg sync.WaitGroup
			got := make([]int, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, _, err := e.tokenFrom(sourceClient(), form)
					if err != nil {
						t.Error(err)
					}
					got[i] = st
				}()
			}
			wg.Wait()
			ended := 0
			for _, rt := range earlier {
				if _, ok := e.srv.lookupFamily(e.ctx(), rt); !ok {
					ended++
				}
			}
			t.Logf("%d redemptions of one code at once: answers %v; %d of bob's %d earlier logins ended", n, got, ended, bound)
			if ended > 1 {
				t.Fatalf("%d redemptions of one code at once ended %d of bob's %d earlier logins, want at most 1", n, ended, bound)
			}
		})
	}
}
