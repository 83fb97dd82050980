package route_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
)

// wamp.registration.match finds the registration a CALL to its URI would
// reach: the wildcard trie is walked along every path the URI's
// components and the empty ones make until a pattern is found, so 4,000
// wildcard patterns of 15 components (a realm holds 4,096), each
// component the URI's or empty and none ending as the URI does, are all
// visited for a match that finds none. It was charged nothing: a session could pipeline as many as
// it liked. It is charged each wildcard node it visits as one entry now
// (a match of a URI no pattern shares costs one listed entry, as
// before), and past the budget the further ones wait their turn.
func TestRegistrationMatchWalkBudgeted(t *testing.T) {
	clk := newStepClock()
	cl := startClockedLoops(t, 1, clk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const comps, regs, perSession = 15, 4000, 1000
	parts := strings.Split("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o", ".")
	uri := strings.Join(parts, ".")
	var wg sync.WaitGroup
	errs := make(chan error, regs/perSession)
	for w := range regs / perSession {
		s := cl.dial() // a session may hold 1,024 patterns
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w*perSession + 1; i <= (w+1)*perSession; i++ {
				p := make([]string, comps)
				for j := range comps {
					if i&(1<<j) == 0 {
						p[j] = parts[j]
					}
				}
				p[comps-1] = "zz"
				if _, err := s.Register(ctx, strings.Join(p, "."), func(context.Context, *client.Invocation) (*client.Result, error) { return nil, nil }, &client.RegisterOptions{Match: "wildcard"}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	admin := cl.dial()
	t0 := time.Now()
	res, err := admin.Call(ctx, "wamp.registration.match", []any{uri}, nil, nil)
	walked := time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Args[0] != nil {
		t.Fatalf("wamp.registration.match found %v, want none", res.Args[0])
	}
	// A URI no pattern shares is cheap, and answered at once as before.
	t0 = time.Now()
	if _, err := admin.Call(ctx, "wamp.registration.match", []any{"x.y"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("one match walking the patterns %v, one of a URI no pattern shares %v", walked, time.Since(t0))
	const n = 12
	done := pendingCalls(ctx, admin, n, "wamp.registration.match", []any{uri})
	atOnce := answeredWithin(t, done, n, time.Second)
	t.Logf("with the clock stopped, %d of %d pipelined wamp.registration.match calls over %d wildcard registrations answered", atOnce, n, regs)
	if atOnce > 8 {
		t.Fatalf("with the clock stopped, %d of %d wamp.registration.match calls walking %d wildcard registrations each answered at once: uncharged", atOnce, n, regs)
	}
	if got := atOnce + answeredAsClockMoves(t, clk, done, n-atOnce); got != n {
		t.Fatalf("%d of %d answered once the budget refilled", got, n)
	}
}
