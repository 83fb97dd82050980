package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// The failover claim wait (routes.go, claims.go cutOff): a REGISTER of a
// single procedure whose claim a routed peer holds, that peer's route
// having closed (killed), waits for it to be taken for dead.

// killHard ends tn as SIGKILL does: its NATS connection and server go
// first (it says no goodbye, its heartbeats stop, its routes close) and
// its claims stay in the store.
func killHard(tn *tnode) {
	tn.n.claims.close(time.Time{})
	tn.n.nc.Close()
	tn.n.srv.Shutdown()
	tn.n.srv.WaitForShutdown()
	tn.stop()
}

// routeID returns the server id of tn's route to the node named peer,
// "" when it has none.
func routeID(t *testing.T, tn *tnode, peer string) string {
	t.Helper()
	rz, err := tn.n.srv.Routez(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rz.Routes {
		if r.RemoteName == peer {
			return r.RemoteID
		}
	}
	return ""
}

// storeAnswers waits until a single REGISTER on tn is granted by the
// claim store (not provisionally): the store has its leaders after a
// node's loss.
func storeAnswers(t *testing.T, ctx context.Context, tn *tnode, s *client.Session) {
	t.Helper()
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	i := 0
	eventually(t, 15*time.Second, func() error {
		i++
		before := tn.n.Stats().ClaimsProvisional.Load()
		reg, err := s.Register(ctx, fmt.Sprintf("com.probe.%d", i), h, nil)
		if err != nil {
			return err
		}
		defer s.Unregister(ctx, reg)
		if tn.n.Stats().ClaimsProvisional.Load() != before {
			return fmt.Errorf("%s's claim was provisional", tn.name)
		}
		return nil
	})
}

// Node c, holding a single procedure, is killed and restarted under the
// same name at once (systemd's Restart= after 100 ms): its new server's
// route to a is up before a hears its new life (its first heartbeat goes
// out before the route forms; here a's control dispatcher is held, as a
// node that hears the next heartbeat only half a second later). The
// client's REGISTER on a must wait for c's old life to be seen to end.
// Before, a took the new route for the old life's (it looked by name),
// so the claim got only the 300 ms of a route still open, and was
// refused procedure_already_exists (Autobahn does not retry it).
func TestClaimOfKilledNodeRestartedAtOnceIsWaitedFor(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b", "c")
	a, c := nodes[0], nodes[2]
	waitClaims(t, 15*time.Second, nodes...)
	ctx := ctxT(t, 30*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	if _, err := c.dial(c.ws(), proto.JSON).Register(ctx, "com.only", h, nil); err != nil {
		t.Fatal(err)
	}
	old := routeID(t, a, "c")
	if old == "" {
		t.Fatal("a has no route to c")
	}
	s := a.dial(a.ws(), proto.JSON)
	release := stallControl(t, a, nil)
	cl := c.n.opts.Cluster
	killHard(c)
	startNode(t, "c", func(o *Options) { o.Cluster = cl })
	eventually(t, 10*time.Second, func() error {
		if id := routeID(t, a, "c"); id == "" || id == old {
			return fmt.Errorf("a's route to c's new life is not up")
		}
		return nil
	})
	storeAnswers(t, ctx, a, s)
	done := make(chan error, 1)
	go func() {
		_, err := s.Register(ctx, "com.only", h, nil)
		done <- err
	}()
	// Long enough for a claim given only routeCloseGrace to be refused.
	select {
	case err := <-done:
		t.Fatalf("REGISTER on a of the procedure of c's killed life, while c's new life's route is up and a has not heard it yet: %v, want it to wait", err)
	case <-time.After(1200 * time.Millisecond):
	}
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("REGISTER on a of the procedure of c's killed life, once a heard c's new life: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the REGISTER did not end")
	}
}
