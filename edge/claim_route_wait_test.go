package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
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

// routeGone waits until tn has no route to the node named peer.
func routeGone(t *testing.T, tn *tnode, peer string) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if routeID(t, tn, peer) != "" {
			return fmt.Errorf("%s's route to %s is still up", tn.name, peer)
		}
		return nil
	})
}

// claimsLeaderNot moves the leadership of the claim bucket's stream off
// the node named name (asked through tn), so that its loss costs no
// election (seconds).
func claimsLeaderNot(t *testing.T, tn *tnode, name string) {
	t.Helper()
	nc, err := clientPort(tn.n)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.NewWithDomain(nc, jsDomain)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, "KV_"+claimBucket)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		switch {
		case info.Cluster == nil || info.Cluster.Leader == "":
			return fmt.Errorf("no leader")
		case info.Cluster.Leader == name:
			nc.Request("$JS."+jsDomain+".API.STREAM.LEADER.STEPDOWN.KV_"+claimBucket, nil, 2*time.Second)
			return fmt.Errorf("%s leads the claims", name)
		}
		return nil
	})
}

// nopHandler answers every invocation with an empty result.
func nopHandler(context.Context, *client.Invocation) (*client.Result, error) {
	return &client.Result{}, nil
}

// holdOnly registers the single procedure com.only on tn, by a session
// of its own: the claim the tests' REGISTERs on other nodes meet.
func holdOnly(t *testing.T, ctx context.Context, tn *tnode) {
	t.Helper()
	if _, err := tn.dial(tn.ws(), proto.JSON).Register(ctx, "com.only", nopHandler, nil); err != nil {
		t.Fatal(err)
	}
}

// registerOnly sends a REGISTER of com.only on s in the background; its
// outcome arrives on the channel returned.
func registerOnly(ctx context.Context, s *client.Session) chan error {
	done := make(chan error, 1)
	go func() {
		_, err := s.Register(ctx, "com.only", nopHandler, nil)
		done <- err
	}()
	return done
}

// stillWaits fails the test with format (given the REGISTER's outcome)
// if the REGISTER whose outcome comes on done ends within d.
func stillWaits(t *testing.T, done <-chan error, d time.Duration, format string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf(format, err)
	case <-time.After(d):
	}
}

// granted fails the test unless the REGISTER whose outcome comes on
// done is granted before ctx ends.
func granted(t *testing.T, ctx context.Context, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-ctx.Done():
		t.Fatal("the REGISTER did not end")
	}
}

// refusedPromptly fails the test unless the REGISTER whose outcome comes
// on done, sent at start, is refused procedure_already_exists within
// 1.5 s.
func refusedPromptly(t *testing.T, done <-chan error, start time.Time, what string) {
	t.Helper()
	select {
	case err := <-done:
		if wampErr(err) != proto.URIProcedureAlreadyExists {
			t.Fatalf("%s: %v, want %s", what, err, proto.URIProcedureAlreadyExists)
		}
		t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(1500 * time.Millisecond):
		t.Fatalf("%s still waits after 1.5 s", what)
	}
}

// storeAnswers waits until a single REGISTER on tn is granted by the
// claim store (not provisionally): the store has its leaders after a
// node's loss.
func storeAnswers(t *testing.T, ctx context.Context, tn *tnode, s *client.Session) {
	t.Helper()
	i := 0
	eventually(t, 15*time.Second, func() error {
		i++
		before := tn.n.Stats().ClaimsProvisional.Load()
		reg, err := s.Register(ctx, fmt.Sprintf("com.probe.%d", i), nopHandler, nil)
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
	holdOnly(t, ctx, c)
	old := routeID(t, a, "c")
	if old == "" {
		t.Fatal("a has no route to c")
	}
	s := a.dial(a.ws(), proto.JSON)
	claimsLeaderNot(t, a, "c")
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
	done := registerOnly(ctx, s)
	// Long enough for a claim given only routeCloseGrace to be refused.
	stillWaits(t, done, 1200*time.Millisecond, "REGISTER on a of the procedure of c's killed life, while c's new life's route is up and a has not heard it yet: %v, want it to wait")
	release()
	granted(t, ctx, done, "REGISTER on a of the procedure of c's killed life, once a heard c's new life")
}

// proxiedTriangle starts a, b and c meshed by NATS routes, every route
// between a and c through TCP proxies (pa to a, pc to c: both advertise
// theirs, and list the other's), so that cutting both cuts a from c
// (and c from b when b dialled it at the address it advertises) but not
// a from b. a and b mesh before c starts: b, learning a's proxy from c
// first, could dial a through it.
func proxiedTriangle(t *testing.T, mutate func(*Options)) (a, b, c *tnode, pa, pc *proxy) {
	t.Helper()
	addrA, addrB, addrC := edgetest.FreeAddr(t), edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	pa, pc = newProxy(t, addrA), newProxy(t, addrC)
	a = startNode(t, "a", func(o *Options) {
		mutate(o)
		o.Cluster.Listen, o.Cluster.Advertise = addrA, pa.addr()
		o.Cluster.Routes = []string{"nats://" + addrB, "nats://" + pc.addr()}
	})
	b = startNode(t, "b", func(o *Options) {
		mutate(o)
		o.Cluster.Listen = addrB
		o.Cluster.Routes = []string{"nats://" + addrA, "nats://" + addrC}
	})
	waitMesh(t, a, b)
	c = startNode(t, "c", func(o *Options) {
		mutate(o)
		o.Cluster.Listen, o.Cluster.Advertise = addrC, pc.addr()
		o.Cluster.Routes = []string{"nats://" + addrB, "nats://" + pa.addr()}
	})
	waitMesh(t, a, b, c)
	directRoute(t, a, b) // b and c may meet through pc: cut, c is alone
	waitClaims(t, 15*time.Second, a, b, c)
	return a, b, c, pa, pc
}

// The route from a to c, which holds a single procedure, flaps (closes
// and forms again to the same server) while a REGISTER of the procedure
// on a waits on it; later (past the wait) c is killed, and a client's
// REGISTER of it on a races the kill. That one must wait for c to be
// taken for dead too. Before, the wait was kept once per life of c: the
// flap had used it up, and the REGISTER was refused at once
// (procedure_already_exists, which Autobahn does not retry). a's control
// dispatcher is held throughout, so that a hears nothing of c's life
// and its end but the route (the flap does not last past peer_timeout).
func TestClaimWaitAfterAnEarlierRouteFlap(t *testing.T) {
	t.Parallel()
	fast := func(o *Options) { o.Heartbeat, o.PeerTimeout = 100*time.Millisecond, 800*time.Millisecond }
	a, _, c, pa, pc := proxiedTriangle(t, fast)
	ctx := ctxT(t, 30*time.Second)
	holdOnly(t, ctx, c)
	id := routeID(t, a, "c")
	s := a.dial(a.ws(), proto.JSON)
	claimsLeaderNot(t, a, "c")
	release := stallControl(t, a, nil)

	// The flap, with a REGISTER waiting on it.
	pa.cut()
	pc.cut()
	routeGone(t, a, "c")
	storeAnswers(t, ctx, a, s)
	flapped := time.Now()
	done := registerOnly(ctx, s)
	time.Sleep(300 * time.Millisecond) // its claim finds the route lost
	pa.restore()
	pc.restore()
	if err := <-done; wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("REGISTER on a of c's procedure during a flap of their route: %v, want %s", err, proto.URIProcedureAlreadyExists)
	}
	eventually(t, 10*time.Second, func() error {
		if got := routeID(t, a, "c"); got != id {
			return fmt.Errorf("a's route to c is not back (%q, was %q)", got, id)
		}
		return nil
	})

	// Past the flap's wait, c is killed.
	time.Sleep(time.Until(flapped.Add(2*a.n.opts.PeerTimeout + 100*time.Millisecond)))
	killHard(c)
	routeGone(t, a, "c")
	storeAnswers(t, ctx, a, s)
	done = registerOnly(ctx, s)
	stillWaits(t, done, 300*time.Millisecond, "REGISTER on a of the procedure of c, killed after an earlier flap of their route: %v, want it to wait for c to be taken for dead")
	release()
	granted(t, ctx, done, "REGISTER on a of the procedure of c, killed, once a took c for dead")
}

// Node c, holding a single procedure, is killed; a REGISTER of it on a
// waits on c's lost route (a hears nothing else of c: its control
// dispatcher is held, and its peer_timeout is long). Meanwhile b takes c
// for dead, takes the procedure over, and gives it back (its callee
// unregisters). a's REGISTER must see the release well before its wait
// ends. Before, a claim parked on a lost route did not ask the store
// again until its wait (2 x peer_timeout) ended or the holder was taken
// for dead. The store's grant is what is checked: a's directory still
// shows c's callee (a hears nothing of c), so the grant is held for it
// (route's heldGrant) and refused past meshRevokeGrace (before, it was
// REGISTERED and revoked for c's callee a second later).
func TestClaimParkedOnLostRouteSeesARelease(t *testing.T) {
	t.Parallel()
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat, o.PeerTimeout = 100*time.Millisecond, 800*time.Millisecond
		if o.Name == "a" {
			o.PeerTimeout = 3 * time.Second // a wait of 6 s
		}
	}, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	waitClaims(t, 15*time.Second, nodes...)
	ctx := ctxT(t, 30*time.Second)
	holdOnly(t, ctx, c)
	s := a.dial(a.ws(), proto.JSON)
	sb := b.dial(b.ws(), proto.JSON)
	claimsLeaderNot(t, a, "c")
	release := stallControl(t, a, nil)
	killHard(c)
	routeGone(t, a, "c")
	storeAnswers(t, ctx, a, s)
	grantedAt := make(chan time.Time, 1)
	hook := func(op string, err error) error {
		if op == "create" && err == nil {
			select {
			case grantedAt <- time.Now():
			default:
			}
		}
		return err
	}
	a.n.claims.testHookStore.Store(&hook)
	done := registerOnly(ctx, s)
	// b takes c for dead, takes the procedure over, and gives it back.
	var reg *client.Registration
	eventually(t, 10*time.Second, func() error {
		r, err := sb.Register(ctx, "com.only", nopHandler, nil)
		if err != nil {
			return err
		}
		reg = r
		return nil
	})
	if err := sb.Unregister(ctx, reg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-grantedAt:
	case <-time.After(2 * time.Second):
		t.Fatalf("the claim on a of the procedure c held still waits 2 s after b gave it back (a's wait on c's lost route is %v)", 2*a.n.opts.PeerTimeout)
	}
	if err := <-done; err != nil && wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("REGISTER on a of the procedure c held, granted by the store while a's directory shows c's callee: %v, want REGISTERED or %s", err, proto.URIProcedureAlreadyExists)
	}
	release()
}

// An edge node, holding a single procedure, is killed; its client
// reconnects to the hub at once and registers the procedure again. The
// hub sees the edge's leaf link close as a cluster node sees a route
// close: the REGISTER waits for the edge to be taken for dead, then is
// granted. Before, leaf-linked nodes kept the old behaviour: refused
// procedure_already_exists (Autobahn does not retry it).
func TestClaimOfKilledLeafNodeIsWaitedFor(t *testing.T) {
	t.Parallel()
	hub, edge, _ := hubAndEdgeWith(t, func(o *Options) { o.Heartbeat, o.PeerTimeout = 100*time.Millisecond, time.Second })
	waitClaims(t, 15*time.Second, hub, edge)
	ctx := ctxT(t, 30*time.Second)
	holdOnly(t, ctx, edge)
	s := hub.dial(hub.ws(), proto.JSON)
	release := stallControl(t, hub, nil)
	killHard(edge)
	eventually(t, 10*time.Second, func() error {
		lz, err := hub.n.srv.Leafz(nil)
		if err != nil {
			return err
		}
		if lz.NumLeafs != 0 {
			return fmt.Errorf("the hub's leaf link to the edge is still up")
		}
		return nil
	})
	done := registerOnly(ctx, s)
	stillWaits(t, done, 500*time.Millisecond, "REGISTER on the hub of the procedure of the killed edge, before the hub took it for dead: %v, want it to wait")
	release()
	granted(t, ctx, done, "REGISTER on the hub of the procedure of the killed edge, once the hub took it for dead")
}

// The route from a to c, which holds a single procedure, closes and
// forms again over and over (cut again 150 ms after it is back), while a
// REGISTER of the procedure on a waits on it: each closing starts a new
// wait (an episode), but the REGISTER must still end, refused (c is
// heard alive: a's control dispatcher is held), within 3 x peer_timeout
// of its start (maxParked) and a little more, not wait for as long as
// the route flaps.
func TestClaimWaitOnAFlappingRouteEnds(t *testing.T) {
	t.Parallel()
	fast := func(o *Options) { o.Heartbeat, o.PeerTimeout = 100*time.Millisecond, 700*time.Millisecond }
	a, _, c, pa, pc := proxiedTriangle(t, fast)
	ctx := ctxT(t, 30*time.Second)
	holdOnly(t, ctx, c)
	s := a.dial(a.ws(), proto.JSON)
	claimsLeaderNot(t, a, "c")
	release := stallControl(t, a, nil)
	defer release()
	cut := func() {
		pa.cut()
		pc.cut()
		routeGone(t, a, "c")
	}
	cut()
	storeAnswers(t, ctx, a, s)
	start := time.Now()
	done := registerOnly(ctx, s)
	limit := 3*a.n.opts.PeerTimeout + time.Second
	flaps := 0
	for {
		pa.restore()
		pc.restore()
		for routeID(t, a, "c") == "" {
			select {
			case err := <-done:
				if wampErr(err) != proto.URIProcedureAlreadyExists {
					t.Fatalf("REGISTER on a of c's procedure while their route flaps: %v, want %s", err, proto.URIProcedureAlreadyExists)
				}
				t.Logf("refused after %v and %d flaps", time.Since(start).Round(time.Millisecond), flaps)
				return
			case <-time.After(10 * time.Millisecond):
			}
			if time.Since(start) > limit {
				t.Fatalf("REGISTER on a of c's procedure still waits %v after it was sent, the route having flapped %d times (maxParked %v)", time.Since(start).Round(time.Millisecond), flaps, 3*a.n.opts.PeerTimeout)
			}
		}
		// Up long enough for a's claim worker (100 ms rounds) to see it
		// back, not for the grace of a route still open (300 ms).
		time.Sleep(150 * time.Millisecond)
		cut()
		flaps++
	}
}
