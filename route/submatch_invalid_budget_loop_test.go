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

// wamp.subscription.match of a topic that is not a valid topic URI
// answers null without listing a subscription (a PUBLISH of it is
// refused), and is charged as such a call, not for the listing it does
// not make. Before, the charge was counted as for a valid topic: a
// leading empty component matched by 1,000 of 2,000 wildcard patterns
// cost 8,000 entries and more, so that with the clock stopped a few of 12
// pipelined calls answered null at once, the others waiting for a budget
// spent on nothing.
func TestSubscriptionMatchInvalidTopicNotCharged(t *testing.T) {
	clk := newStepClock()
	// One address's sessions make them: a realm bound of 8,192, so that
	// its quarter (limits.realm_wildcard_subscriptions) holds 2,000.
	cl := startClockedLoops(t, 1, clk, func(c *route.Config) { c.MaxRealmWildcardSubscriptions = 8192 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const comps, subs = 11, 2000
	parts := strings.Split("a.b.c.d.e.f.g.h.i.j.k", ".")
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
	// Its first component empty: matched by the 1,000 patterns whose
	// first component is.
	topic := "." + strings.Join(parts[1:], ".")
	admin := cl.dial()
	const n = 12
	done := pendingCalls(ctx, admin, n, "wamp.subscription.match", []any{topic})
	if atOnce := answeredWithin(t, done, n, 5*time.Second); atOnce != n {
		t.Fatalf("with the clock stopped, %d of %d wamp.subscription.match calls of the invalid topic %q (answered null) answered at once: charged for a listing they do not make", atOnce, n, topic)
	}
}
