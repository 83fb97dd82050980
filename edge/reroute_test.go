package edge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// WAMP call re-routing across three nodes meshed by NATS: callees on
// every node answer wamp.error.unavailable, the caller's node offers the
// call to an untried callee here or on another node, each callee at most
// once per call; when all refused, the caller gets no_available_callee
// with the last refusal's payload; a caller canceling a rerouted call
// interrupts the callee that has it; nothing stays pending on any node.
func TestClusterReroute(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxT(t, 60*time.Second)

	var mu sync.Mutex
	hits := map[string]map[string]int{} // call key -> callee -> invocations
	record := func(name string, inv *client.Invocation) {
		mu.Lock()
		defer mu.Unlock()
		key := fmt.Sprint(inv.Procedure, inv.Args)
		if hits[key] == nil {
			hits[key] = map[string]int{}
		}
		hits[key][name]++
	}
	refuse := func(name string) client.Handler {
		return func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
			record(name, inv)
			return nil, &client.Error{URI: proto.URIUnavailable, Args: []any{"busy", name}}
		}
	}
	release := make(chan struct{})
	interrupted := make(chan struct{}, 1)
	serve := func(name string) client.Handler {
		return func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
			record(name, inv)
			if inv.Args[0] == "block" {
				select {
				case <-ctx.Done():
					interrupted <- struct{}{}
					return nil, ctx.Err()
				case <-release:
				}
			}
			return &client.Result{Args: []any{"ok", name}}, nil
		}
	}
	// com.rr: refusing callees on A (the caller's node, local first), two
	// on B; the one that serves on C. com.none: every callee refuses.
	reg := func(s *client.Session, proc string, h client.Handler) {
		if _, err := s.Register(ctx, proc, h, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
			t.Fatal(err)
		}
	}
	sa, sb1, sb2, sc := a.dial(a.ws(), proto.JSON), b.dial(b.rs(), proto.CBOR), b.dial(b.ws(), proto.MsgPack), c.dial(c.ws(), proto.JSON)
	reg(sa, "com.rr", refuse("a"))
	reg(sb1, "com.rr", refuse("b1"))
	reg(sb2, "com.rr", refuse("b2"))
	reg(sc, "com.rr", serve("c"))
	for _, s := range []struct {
		s    *client.Session
		name string
	}{{sa, "a"}, {sb1, "b1"}, {sb2, "b2"}, {sc, "c"}} {
		reg(s.s, "com.none", refuse(s.name))
	}
	eventually(t, 10*time.Second, func() error {
		for _, p := range []string{"com.rr", "com.none"} {
			if n := len(a.r.MeshCallees("realm1", p)); n != 2 {
				return fmt.Errorf("A sees %d nodes with callees of %s", n, p)
			}
		}
		return nil
	})

	caller := a.dial(a.ws(), proto.MsgPack)
	for i := 0; i < 8; i++ {
		res, err := caller.Call(ctx, "com.rr", []any{"call", i}, nil, nil)
		if err != nil || len(res.Args) != 2 || res.Args[1] != "c" {
			t.Fatalf("call %d: %v %v", i, res, err)
		}
	}
	_, err := caller.Call(ctx, "com.none", []any{"x"}, nil, nil)
	var we *client.Error
	if wampErr(err) != proto.URINoAvailableCallee || !errors.As(err, &we) || len(we.Args) != 2 || we.Args[0] != "busy" {
		t.Fatalf("every callee refusing: %v", err)
	}
	mu.Lock()
	for key, byCallee := range hits {
		for name, n := range byCallee {
			if n != 1 {
				t.Errorf("%s: callee %s invoked %d times", key, name, n)
			}
		}
	}
	if n := len(hits[fmt.Sprint("com.none", []any{"x"})]); n != 4 {
		t.Errorf("com.none reached %d callees, want all 4: %v", n, hits)
	}
	mu.Unlock()
	if st := a.r.Stats(); st.CallsRerouted == 0 || st.CallsRerouteExhausted != 1 {
		t.Fatalf("A's stats: rerouted %d, exhausted %d", st.CallsRerouted, st.CallsRerouteExhausted)
	}

	// Canceled once rerouted to C: C's callee is interrupted.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := caller.Call(cctx, "com.rr", []any{"block"}, nil, &client.CallOptions{CancelMode: "killnowait"})
		done <- err
	}()
	eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if hits[fmt.Sprint("com.rr", []any{"block"})]["c"] == 0 {
			return fmt.Errorf("the blocking call has not reached C: %v", hits)
		}
		return nil
	})
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the canceled call succeeded")
	}
	select {
	case <-interrupted:
	case <-time.After(10 * time.Second):
		t.Fatal("C's callee was not interrupted")
	}
	close(release)
	eventually(t, 10*time.Second, func() error {
		for _, n := range nodes {
			if p := n.r.MeshPending(); p != 0 {
				return fmt.Errorf("%s: %d calls or invocations pending", n.name, p)
			}
			tr, err := n.r.Traffic(ctx)
			if err != nil {
				return err
			}
			if tr.CallsInFlight != 0 {
				return fmt.Errorf("%s: %d calls in flight", n.name, tr.CallsInFlight)
			}
		}
		return nil
	})
}
