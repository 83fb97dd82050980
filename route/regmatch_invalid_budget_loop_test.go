package route_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
)

// wamp.registration.match of a URI that is not a valid procedure URI
// answers null without a look-up (a CALL of it is refused), and is
// charged as such a call, not for the walk of the wildcard index a valid
// URI makes. Before, its charge walked the index along the URI's
// components and its empty one as a CALL's look-up would, and counted
// every node visited: over 4,000 wildcard patterns of 15 components, a
// URI whose last component is empty cost about as much as the full walk,
// so that with the clock stopped a few of 12 pipelined calls answered
// null at once, the others waiting for a budget spent on nothing.
func TestRegistrationMatchInvalidURINotCharged(t *testing.T) {
	clk := newStepClock()
	cl := startClockedLoops(t, 1, clk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const comps, regs, perSession = 15, 4000, 1000
	parts := strings.Split("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o", ".")
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
					if !strings.Contains(err.Error(), "overlaps too many") { // past maxWildcardWalk: the walk stays within it
						errs <- err
					}
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
	uri := strings.Join(parts[:comps-1], ".") + "." // its last component empty
	admin := cl.dial()
	const n = 12
	done := pendingCalls(ctx, admin, n, "wamp.registration.match", []any{uri})
	if atOnce := answeredWithin(t, done, n, 5*time.Second); atOnce != n {
		t.Fatalf("with the clock stopped, %d of %d wamp.registration.match calls of the invalid URI %q (answered null) answered at once: charged for a walk they do not make", atOnce, n, uri)
	}
}
