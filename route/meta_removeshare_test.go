package route_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// startAuthLoops starts a router of two event loops on a loopback port
// with realms "a" and "b", whose sessions name their authid (extraAuth),
// and returns it with a dial of (realm, authid) that lands on a loop.
func startAuthLoops(t *testing.T) (*loopRouter, func(realm, authid string, idx int) *client.Session) {
	t.Helper()
	return startAuthLoopsWith(t, nil)
}

// startAuthLoopsWith is startAuthLoops with the configuration changed by
// mutate.
func startAuthLoopsWith(t *testing.T, mutate func(*route.Config)) (*loopRouter, func(realm, authid string, idx int) *client.Session) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := route.Config{Realms: []route.RealmConfig{
		{Name: "a", Authenticators: []route.Authenticator{extraAuth{}}},
		{Name: "b", Authenticators: []route.Authenticator{extraAuth{}}},
	}, Shards: 2, Logger: quiet}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := route.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	lr := &loopRouter{t: t, r: r, addr: e.Addrs()[0].String()}
	dial := func(realm, authid string, idx int) *client.Session {
		t.Helper()
		for range 32 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s, err := client.Dial(ctx, client.Config{URL: "rs://" + lr.addr, Realm: realm, Serializer: proto.MsgPack,
				AuthID: authid, AuthMethods: []string{"x-extra"}})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if route.SessionShard(r, realm, s.ID()) == idx {
				t.Cleanup(func() { s.Close() })
				return s
			}
			defer s.Close()
		}
		t.Fatalf("no session landed on loop %d", idx)
		return nil
	}
	return lr, dial
}

// The removals waiting for a busy loop are bounded per loop (8 MiB,
// every realm's), and each caller (its authid, or an anonymous client's
// address) may take a quarter of it and no more than it leaves free, as
// the router's other shared bounds are shared. Before, one authid
// removing its own sessions' 2,000 registrations and subscriptions with a
// 4 KB reason while their loop was busy filled the loop's whole bound,
// and every other removal of that loop's sessions, another operator's of
// its realm or another realm's, got wamp.error.unavailable until the
// loop ran.
func TestRemovalShareLeavesRoomForOthers(t *testing.T) {
	lr, dial := startAuthLoops(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mallory := dial("a", "mallory", 0)
	own := dial("a", "mallory", 1)
	opsA := dial("a", "ops", 0)
	devA := dial("a", "dev", 1)
	opsB := dial("b", "ops", 0)
	devB := dial("b", "dev", 1)
	const entries = 1000
	var subIDs, regIDs []uint64
	for i := range entries {
		sub, err := own.Subscribe(ctx, "com.example.sub"+strconv.Itoa(i), func(*client.Event) {}, nil)
		if err != nil {
			t.Fatal(err)
		}
		reg, err := own.Register(ctx, "com.example.proc"+strconv.Itoa(i), func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{}, nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		subIDs, regIDs = append(subIDs, sub.ID()), append(regIDs, reg.ID())
	}
	subA, err := devA.Subscribe(ctx, "com.example.dev", func(*client.Event) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	regA, err := devA.Register(ctx, "com.example.devproc", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	subB, err := devB.Subscribe(ctx, "com.example.dev", func(*client.Event) {}, nil)
	if err != nil {
		t.Fatal(err)
	}

	release := lr.stall(1)
	reason := "com." + strings.Repeat("r", 4000)
	refused := 0
	for i := range 2 * entries {
		proc, id := "wamp.subscription.remove_subscriber", subIDs[i/2]
		if i%2 == 1 {
			proc, id = "wamp.registration.remove_callee", regIDs[i/2]
		}
		_, err := mallory.Call(ctx, proc, []any{id, own.ID(), reason}, nil, nil)
		var we *client.Error
		switch {
		case err == nil:
		case errors.As(err, &we) && we.URI == proto.URIUnavailable:
			refused++
		default:
			t.Fatalf("removal %d: %v", i, err)
		}
	}
	t.Logf("one authid's %d distinct removals with a 4 KB reason on a busy loop: %d refused", 2*entries, refused)
	var failed []string
	for _, r := range []struct {
		who  string
		s    *client.Session
		proc string
		args []any
	}{
		{"realm a's other operator, remove_subscriber", opsA, "wamp.subscription.remove_subscriber", []any{subA.ID(), devA.ID(), reason}},
		{"realm a's other operator, remove_callee", opsA, "wamp.registration.remove_callee", []any{regA.ID(), devA.ID()}},
		{"realm b's operator, remove_subscriber", opsB, "wamp.subscription.remove_subscriber", []any{subB.ID(), devB.ID(), reason}},
	} {
		if _, err := r.s.Call(ctx, r.proc, r.args, nil, nil); err != nil {
			failed = append(failed, r.who+": "+err.Error())
		}
	}
	release()
	if len(failed) > 0 {
		t.Fatalf("after one authid's %d removals on the busy loop (%d refused), other callers' removals refused:\n%s", 2*entries, refused, strings.Join(failed, "\n"))
	}
	if refused == 0 {
		t.Fatal("none of one authid's removals refused past its share")
	}

	// The loop ran them: the other callers' removals were carried out,
	// and the shares were given back (mallory's removals are taken again).
	for _, e := range []struct {
		s    *client.Session
		proc string
		id   uint64
		none string
	}{
		{opsA, "wamp.subscription.count_subscribers", subA.ID(), proto.URINoSuchSubscription},
		{opsA, "wamp.registration.count_callees", regA.ID(), proto.URINoSuchRegistration},
		{opsB, "wamp.subscription.count_subscribers", subB.ID(), proto.URINoSuchSubscription},
	} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			_, err := e.s.Call(ctx, e.proc, []any{e.id}, nil, nil)
			var we *client.Error
			if errors.As(err, &we) && we.URI == e.none {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s(%d) 10 s after the loop ran again: %v, want %s", e.proc, e.id, err, e.none)
			}
		}
	}
	release = lr.stall(1)
	defer release()
	// The last was refused (nothing is given back while the loop is
	// busy): taken now.
	if _, err := mallory.Call(ctx, "wamp.registration.remove_callee", []any{regIDs[entries-1], own.ID(), reason}, nil, nil); err != nil {
		t.Fatalf("a removal refused before, once the loop ran the others: %v, want it taken", err)
	}
}
