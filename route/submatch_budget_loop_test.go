package route_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/route"
)

// wamp.subscription.match looks its topic up in every pattern index (the
// wildcard trie along every path its components and the empty ones make)
// and lists each subscription that matches: with 2,000 wildcard
// subscriptions matching one topic, a match of a few dozen bytes lists
// 2,000 ids, where wamp.subscription.list of as many is charged 16,000
// entries of the session's walk budget. It was charged nothing: a session
// could pipeline as many as it liked. It is charged like the other walks
// now: each subscription it lists as a listed entry, each wildcard node
// it visits as one entry; past the budget the further ones wait their
// turn, and all are answered.
func TestSubscriptionMatchWalkBudgeted(t *testing.T) {
	clk := newStepClock()
	// One address's sessions make them: a realm bound of 8,192, so that
	// its quarter (limits.realm_wildcard_subscriptions) holds 2,000.
	cl := startClockedLoops(t, 1, clk, func(c *route.Config) { c.MaxRealmWildcardSubscriptions = 8192 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const comps, subs = 11, 2000
	parts := strings.Split("a.b.c.d.e.f.g.h.i.j.k", ".")
	topic := strings.Join(parts, ".")
	// 2,000 wildcard patterns matching the topic: its components with
	// those of pattern i's bits left empty, from two sessions (a session
	// may hold 1,024 patterns).
	owners := []*client.Session{cl.dial(), cl.dial()}
	var wg sync.WaitGroup
	errs := make(chan error, subs)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1 + w; i <= subs; i += 8 {
				p := make([]string, comps)
				for j := range comps {
					if i&(1<<j) == 0 {
						p[j] = parts[j]
					}
				}
				if _, err := owners[w%2].Subscribe(ctx, strings.Join(p, "."), func(*client.Event) {}, &client.SubscribeOptions{Match: "wildcard"}); err != nil {
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
	res, err := admin.Call(ctx, "wamp.subscription.match", []any{topic}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := res.Args[0].([]any); len(l) != subs {
		t.Fatalf("wamp.subscription.match listed %d subscriptions, want %d", len(l), subs)
	}
	// With the clock stopped the budget does not refill: 12 more at once
	// (the session's meta calls may wait 16 at a time).
	const n = 12
	done := pendingCalls(ctx, admin, n, "wamp.subscription.match", []any{topic})
	atOnce := answeredWithin(t, done, n, time.Second)
	t.Logf("with the clock stopped, %d of %d pipelined wamp.subscription.match calls listing %d subscriptions answered", atOnce, n, subs)
	// One listing costs 16,000 entries and more: the burst (65,536, a
	// fourth spent above) pays for 3 or 4 of them.
	if atOnce > 5 {
		t.Fatalf("with the clock stopped, %d of %d wamp.subscription.match calls listing %d subscriptions each answered at once: uncharged, where the walk budget's burst pays for about 4", atOnce, n, subs)
	}
	// None is lost: they come once the budget refills.
	if got := atOnce + answeredAsClockMoves(t, clk, done, n-atOnce); got != n {
		t.Fatalf("%d of %d answered once the budget refilled", got, n)
	}
}
