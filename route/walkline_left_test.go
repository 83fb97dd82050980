package route_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/route"
)

// A session that leaves while its meta calls wait in its owner's line
// stays in the line, skipped when it comes first (walkOwner.first), and
// its waiting walks (each call's arguments as received, up to
// maxMetaArgs) were held with it until the sessions ahead had walked:
// a client could close sessions each holding 16 such calls behind a
// session of its own that keeps its place, and the router held them. A
// leaving session's waiting walks are dropped as it leaves (they never
// run then).
func TestWalkShareLineLeftSessionsReleased(t *testing.T) {
	clk := newStepClock()
	cl := startClockedLoops(t, 2, clk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// 1,000 subscriptions: a list costs 8,000 entries; a session's own
	// budget pays for 9 at once, the address's share for 17.
	owner := cl.dial()
	for i := range 1000 {
		if _, err := owner.Subscribe(ctx, "com.sub."+strconv.Itoa(i), func(*client.Event) {}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Two sessions put the share in debt (and their own budgets).
	for range 2 {
		s := cl.dial()
		ch := pendingCalls(ctx, s, 12, "wamp.subscription.list", nil)
		answeredWithin(t, ch, 12, 300*time.Millisecond)
	}
	waitLine := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); route.WalkLine(cl.r) != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d sessions in line after 10 s, want %d", route.WalkLine(cl.r), want)
			}
		}
	}
	// The first in line keeps its place while the clock stands still.
	first := cl.dial()
	pendingCalls(ctx, first, 1, "wamp.subscription.list", nil)
	time.Sleep(200 * time.Millisecond)
	base := route.WalkLine(cl.r) // the first and maybe a session that put the share in debt
	if base == 0 {
		t.Fatal("no session waits in line")
	}

	const n = 40
	arg := []any{[]any{strings.Repeat("x", 60_000)}} // filter_authroles
	before := heapMiB()
	for range n {
		s := cl.dial()
		pendingCalls(ctx, s, 16, "wamp.session.list", arg)
		waitLine(base + 1) // those that left are skipped
		// All 16 held (a refusal or an answer would come at once).
		time.Sleep(20 * time.Millisecond)
		s.Close()
	}
	waitLine(base)
	time.Sleep(100 * time.Millisecond)
	held := heapMiB() - before
	t.Logf("%d sessions that left with 16 meta calls of 60 KB waiting in line: the router holds %.1f MiB more", n, held)
	if held > 8 {
		t.Fatalf("%d sessions that left with 16 meta calls of 60 KB waiting in line: the router holds %.1f MiB more, want at most 8", n, held)
	}
}
