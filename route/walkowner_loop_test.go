package route_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/route"
)

// A session's walk budget was all there was, and a new session came with a
// new one: 100 sessions opened one after another from one client each
// listed 20,000 subscriptions at once (11.9 ms of the loop each), where
// one session's budget pays for one such list and then about 3 a second.
// Each session now draws on its client's share as well (the client
// address of an anonymous session, the authid of an authenticated one),
// which a reconnect does not renew: with the clock stopped, fresh
// sessions from one address are answered for two sessions' budgets, the
// next waits its turn; a session of another client (a monitor with its
// own user) is answered at once meanwhile, and the waiting list comes
// once the clock moves. A client that opens a new session to list once a
// second is answered at once each time.
func TestWalkBudgetSurvivesReconnect(t *testing.T) {
	pw, err := route.HashPassword("monitor-secret", 1000)
	if err != nil {
		t.Fatal(err)
	}
	users, err := route.NewUsers([]*route.User{{AuthID: "monitor", Roles: []string{"admin"}, Password: pw}})
	if err != nil {
		t.Fatal(err)
	}
	clk := newStepClock()
	cl := startClockedLoops(t, 2, clk, func(c *route.Config) {
		c.Realms = []route.RealmConfig{{Name: "realm1", Anonymous: true, Users: users,
			Authenticators: []route.Authenticator{&route.TicketAuth{Users: users}}}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// 10,000 subscriptions: a list of them costs 80,000 entries, more
	// than a session's burst (65,536).
	const subs = 10000
	owner := cl.dial()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < subs; i += 8 {
				if _, err := owner.Subscribe(ctx, "com.sub."+strconv.Itoa(i), func(*client.Event) {}, nil); err != nil {
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

	// Fresh sessions one after another, each listing once and leaving.
	const fresh = 10
	answered := 0
	var waiting <-chan error
	var waiter *client.Session
	for range fresh {
		s := cl.dial()
		done := pendingCalls(ctx, s, 1, "wamp.subscription.list", nil)
		if answeredWithin(t, done, 1, time.Second) == 0 {
			waiting, waiter = done, s
			break
		}
		answered++
		s.Close()
	}
	t.Logf("with the clock stopped, %d of %d fresh sessions of one address answered their wamp.subscription.list of %d at once", answered, fresh, subs)
	if waiting == nil {
		t.Fatalf("with the clock stopped, each of %d fresh sessions of one address had its wamp.subscription.list of %d subscriptions (80,000 entries) answered at once: a new session brought a new walk budget", fresh, subs)
	}
	if answered < 1 {
		t.Fatalf("the first session's list waited")
	}

	// Another client meanwhile: a monitor with its own user.
	mon := cl.dialWith(client.Config{AuthID: "monitor", AuthMethods: []string{"ticket"},
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return "monitor-secret", nil, nil }})
	if n := answeredWithin(t, pendingCalls(ctx, mon, 1, "wamp.subscription.list", nil), 1, 5*time.Second); n != 1 {
		t.Fatalf("a session of another client (authid monitor) waited for the anonymous address's walk debt")
	}
	// The waiting list comes once the clock moves.
	if answeredAsClockMoves(t, clk, waiting, 1) != 1 {
		t.Fatalf("the waiting session's list was not answered once the clock moved")
	}
	// A client opening a new session to list once a second is answered
	// at once each time.
	for i := range 5 {
		clk.add(time.Second)
		s := cl.dial()
		if answeredWithin(t, pendingCalls(ctx, s, 1, "wamp.subscription.list", nil), 1, 5*time.Second) != 1 {
			t.Fatalf("a fresh session listing once a second: list %d waited", i+1)
		}
		s.Close()
	}
	// The shares go with their sessions once whole again.
	for _, s := range []*client.Session{owner, waiter, mon} {
		s.Close()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if held, _ := route.WalkShares(cl.r); held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("shares of walk budget still held 10 s after every session closed")
		}
	}
	clk.add(10 * time.Second)
	s := cl.dial()
	if answeredWithin(t, pendingCalls(ctx, s, 1, "wamp.subscription.list", nil), 1, 5*time.Second) != 1 {
		t.Fatal("list waited")
	}
	if held, all := route.WalkShares(cl.r); held != 1 || all != 1 {
		t.Fatalf("%d shares of walk budget kept (%d held) with one session left, want its own", all, held)
	}
}

// A client's share of walk budget that its last session left in debt
// waits in the idle list for the sweep (at most once a second). A session
// of that client that came and went meanwhile, the share whole by then,
// dropped it from the shares at its leave, leaving it in the idle list;
// the next sweep dropped it again by its key, which by then named the
// share a later session of the client had made: that session's share was
// no longer found, and the client's next session made a whole new one
// while the other was in debt.
func TestWalkShareSweptOnceDropped(t *testing.T) {
	pw, err := route.HashPassword("monitor-secret", 1000)
	if err != nil {
		t.Fatal(err)
	}
	users, err := route.NewUsers([]*route.User{{AuthID: "monitor", Roles: []string{"admin"}, Password: pw}})
	if err != nil {
		t.Fatal(err)
	}
	clk := newStepClock()
	cl := startClockedLoops(t, 2, clk, func(c *route.Config) {
		c.Realms = []route.RealmConfig{{Name: "realm1", Anonymous: true, Users: users,
			Authenticators: []route.Authenticator{&route.TicketAuth{Users: users}}}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// 10,000 subscriptions: a list of them costs 80,000 entries; the
	// address's share pays for one and a half at once.
	const subs = 10000
	owner := cl.dial()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < subs; i += 8 {
				if _, err := owner.Subscribe(ctx, "com.sub."+strconv.Itoa(i), func(*client.Event) {}, nil); err != nil {
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
	shares := func(held, all int, what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			h, a := route.WalkShares(cl.r)
			if h == held && a == all {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d shares of walk budget (%d held), want %d (%d held)", what, a, h, all, held)
			}
		}
	}
	// Answered at once: within 5 s (a call waiting its turn is answered
	// only once the clock moves).
	call := func(s *client.Session, proc string) bool {
		return answeredWithin(t, pendingCalls(ctx, s, 1, proc, nil), 1, 5*time.Second) == 1
	}

	// Two sessions of the address list once each and leave: its share
	// is in debt, kept for the sweep.
	for i := range 2 {
		s := cl.dial()
		if !call(s, "wamp.subscription.list") {
			t.Fatalf("list %d waited", i+1)
		}
		s.Close()
	}
	shares(0, 1, "the address's sessions gone, its share in debt")
	// Half a second on (no sweep yet), the share whole again: a session
	// of the address counts and leaves, the share dropped with it.
	clk.add(500 * time.Millisecond)
	s2 := cl.dial()
	if !call(s2, "wamp.session.count") {
		t.Fatal("count waited")
	}
	clk.add(10 * time.Millisecond) // the count paid for
	s2.Close()
	shares(0, 0, "its share whole again, the address's session gone")
	// Another session of the address makes a share of its own; past a
	// second a session of another client has the shares swept.
	s3 := cl.dial()
	if !call(s3, "wamp.session.count") {
		t.Fatal("count waited")
	}
	clk.add(500 * time.Millisecond)
	mon := cl.dialWith(client.Config{AuthID: "monitor", AuthMethods: []string{"ticket"},
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return "monitor-secret", nil, nil }})
	if !call(mon, "wamp.session.count") {
		t.Fatal("the monitor's count waited")
	}
	if held, all := route.WalkShares(cl.r); held != 2 || all != 2 {
		t.Errorf("after the sweep, %d shares of walk budget (%d held), want 2 held: the address's session and the monitor's", all, held)
	}
	// The address's share pays for one list and a half: s3's, then one
	// fresh session's, and the next waits.
	if !call(s3, "wamp.subscription.list") {
		t.Fatal("list waited")
	}
	answered := 0
	for range 4 {
		s := cl.dial()
		if !call(s, "wamp.subscription.list") {
			break
		}
		answered++
	}
	t.Logf("with the clock stopped, after the sweep %d fresh sessions of the address answered a list at once beside its session's", answered)
	if answered > 1 {
		t.Fatalf("with the clock stopped, %d fresh sessions of the address had a list of %d subscriptions answered at once beside its session's: the share its session holds was dropped by the sweep, and a new session made a new one", answered, subs)
	}
}
