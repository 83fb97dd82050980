package edge

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A node that dies holding the claim of a single registration (killed:
// nothing is released) and restarts under the same name: the claim is its
// earlier life's, whose registrations are gone, so another node may
// register the procedure. It was refused for good
// (procedure_already_exists), the store's owner name being alive again,
// until the restarted node itself happened to register the procedure.
func TestClaimOfACrashedNodeDoesNotOutliveItsRestart(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b", "c")
	waitClaims(t, 20*time.Second, nodes...)
	a, c := nodes[0], nodes[2]
	ctx := ctxT(t, 30*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	if _, err := c.dial(c.rs(), proto.JSON).Register(ctx, "com.exclusive", h, nil); err != nil {
		t.Fatal(err)
	}
	// c is killed: its mesh is gone before its sessions could release
	// anything, as with SIGKILL. It restarts at once, under its name.
	// (Its claim worker stops first, without giving its claims back as a
	// clean shutdown does.)
	c.n.claims.close(time.Time{})
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c.n.Shutdown(sctx)
	cancel()
	c.stop()
	cl := c.n.opts.Cluster
	nodes[2] = startNode(t, "c", func(o *Options) { o.Cluster = cl })
	waitMesh(t, nodes...)
	// Within a heartbeat (a learns the new c's boot from it).
	sa := a.dial(a.ws(), proto.CBOR)
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := sa.Register(ctx, "com.exclusive", h, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registering on a the single procedure the crashed c held before its restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two nodes under one name (mesh.node defaults to the host name: machines
// cloned from one image share it) on one mesh: a single registration the
// first holds is refused on the second (procedure_already_exists) while
// the first is heard. Before, the claim store took a claim written under
// its own name for its own earlier life's, whatever its boot: the second
// node took the first's claim over and both held the registration, and
// as the two drop each other's messages the directory never settled it.
// Each logs the collision once (naming the other boot) however many of
// the other's messages it drops, and counts the other node
// (PeersSameName). Once the first leaves, the second registers the
// procedure.
func TestDuplicateNodeNameKeepsSingleExclusive(t *testing.T) {
	t.Parallel()
	url := jsServer(t)
	logs1, logs2 := &lockedBuf{}, &lockedBuf{}
	a1 := startNode(t, "a", func(o *Options) { o.NatsURL, o.Logger = url, slog.New(slog.NewTextHandler(logs1, nil)) })
	a2 := startNode(t, "a", func(o *Options) { o.NatsURL, o.Logger = url, slog.New(slog.NewTextHandler(logs2, nil)) })
	waitClaims(t, 10*time.Second, a1, a2)
	time.Sleep(time.Second) // heartbeats heard both ways
	ctx := ctxT(t, 30*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	if _, err := a1.dial(a1.ws(), proto.JSON).Register(ctx, "com.only", h, nil); err != nil {
		t.Fatal(err)
	}
	s2 := a2.dial(a2.ws(), proto.JSON)
	if _, err := s2.Register(ctx, "com.only", h, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("a second node under the same name registering a single procedure the first holds: %v, want %s (a2: claims refused %d, provisional %d)",
			err, proto.URIProcedureAlreadyExists, a2.n.stats.ClaimsRefused.Load(), a2.n.stats.ClaimsProvisional.Load())
	}
	for i, n := range []*tnode{a1, a2} {
		if g := n.n.Stats().PeersSameName.Load(); g != 1 {
			t.Errorf("a%d: PeersSameName = %d, want 1", i+1, g)
		}
	}
	// The other's directory change (its REGISTER) was dropped, and the
	// collision logged once, with the other's boot.
	eventually(t, 5*time.Second, func() error {
		if d := a2.n.Stats().SameName.Load(); d == 0 {
			return fmt.Errorf("a2 dropped none of a1's messages")
		}
		return nil
	})
	for i, c := range []struct {
		logs  *lockedBuf
		other *tnode
	}{{logs1, a2}, {logs2, a1}} {
		l := c.logs.String()
		if k := strings.Count(l, "another node uses this node's name"); k != 1 || !strings.Contains(l, fmt.Sprint(c.other.n.boot)) {
			t.Errorf("a%d logged the name collision %d times (want once, naming the other boot %d):\n%s", i+1, k, c.other.n.boot, l)
		}
	}
	// a1 leaves (it gives back no claim, as if killed; its goodbye
	// tells a2 it is gone): a2 may register the procedure.
	a1.n.claims.close(time.Time{})
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	a1.n.Shutdown(sctx)
	cancel()
	a1.stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s2.Register(ctx, "com.only", h, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a2 registering the single procedure after a1 left: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if g := a2.n.Stats().PeersSameName.Load(); g != 0 {
		t.Errorf("a2: PeersSameName = %d after a1 left, want 0", g)
	}
}

// A node under this node's name counts as alive, for the claims it
// wrote, while it is heard within PeerTimeout: once it is silent for
// longer (killed, without a goodbye) its claims are taken over, as are
// those of a boot never heard (this node's earlier life).
func TestSameNameNodeAliveWhileHeard(t *testing.T) {
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := New(Options{Router: r, Name: "a", NatsURL: "nats://127.0.0.1:1", PeerTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n.heardTwin(7)
	if !n.twinAlive("7") || n.twinAlive("8") || n.twinAlive(strconv.FormatUint(n.boot, 10)) {
		t.Fatalf("twinAlive: 7 %v (want true), 8 %v, own boot %v (want false)", n.twinAlive("7"), n.twinAlive("8"), n.twinAlive(strconv.FormatUint(n.boot, 10)))
	}
	if g := n.stats.PeersSameName.Load(); g != 1 {
		t.Fatalf("PeersSameName = %d, want 1", g)
	}
	// Silent for longer than PeerTimeout.
	n.peers.twins[7].last.Store(n.mono() - int64(2*time.Second))
	if n.twinAlive("7") {
		t.Fatal("a node under this node's name silent past PeerTimeout still counts as alive")
	}
	n.checkTwins(time.Now())
	if g := n.stats.PeersSameName.Load(); g != 0 || len(n.peers.twins) != 0 {
		t.Fatalf("after checkTwins: PeersSameName = %d, twins %v, want none", g, n.peers.twins)
	}
}
