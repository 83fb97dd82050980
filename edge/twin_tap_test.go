package edge

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A node restarted under its name asks the mesh whether its earlier
// life still runs (twinRuns) before it takes that life's single claims
// over. A passive tap on the mesh (an operator's `nats sub 'ew.>'`) is
// interest, so NATS no longer answers "no responders", and a JetStream
// stream capturing `ew.>` answers the question with its PubAck: both
// were taken for a twin that might run, and waited for up to
// peer_timeout on top of the question's second. The restarted node's
// REGISTER of its earlier life's single procedure took 1 s and
// peer_timeout, where a node restarted after a crash is to hold it at
// once. A node started under a live node's name is still refused that
// node's single procedure with the tap and the stream in place.
func TestRestartWithMeshTapTakesItsClaimsOver(t *testing.T) {
	t.Parallel()
	url := jsServer(t)
	tap, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	var tapped atomic.Int64
	if _, err := tap.Subscribe("ew.>", func(*nats.Msg) { tapped.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := tap.Flush(); err != nil {
		t.Fatal(err)
	}
	// A peer_timeout long enough that waiting for it cannot pass for a
	// slow machine.
	opts := func(o *Options) { o.NatsURL, o.PeerTimeout = url, 8*time.Second }
	ctx := ctxT(t, 120*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"c"}}, nil
	}
	a := startNode(t, "a", opts)
	c := startNode(t, "c", opts)
	waitMesh(t, a, c)
	waitClaims(t, 20*time.Second, a, c)
	if _, err := c.dial(c.ws(), proto.JSON).Register(ctx, "p.c", h, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.rs(), proto.MsgPack)

	restart := func(what string) {
		t.Helper()
		killNode(c)
		c = startNode(t, "c", opts)
		waitClaims(t, 20*time.Second, c)
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 4*time.Second)
		_, err := c.dial(c.ws(), proto.JSON).Register(rctx, "p.c", h, nil)
		cancel()
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s: the restarted c registering its earlier life's single procedure: %v after %v (peer_timeout %v; the tap saw %d messages)",
				what, err, took.Round(time.Millisecond), c.n.opts.PeerTimeout, tapped.Load())
		}
		registered := time.Now()
		for {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := caller.Call(cctx, "p.c", nil, nil, nil)
			cancel()
			if err == nil {
				break
			}
			if time.Since(registered) > 4*time.Second {
				t.Fatalf("%s: p.c not callable from a 4 s after the restarted c's REGISTERED: %v", what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s: REGISTER of the earlier life's procedure took %v, callable from a %v after REGISTERED",
			what, took.Round(time.Millisecond), time.Since(registered).Round(time.Millisecond))
	}
	restart("a tap on ew.>")

	// A JetStream stream capturing the mesh's subjects answers each
	// message with a reply subject with its PubAck.
	js, err := jetstream.New(tap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TAP", Subjects: []string{"ew.>"},
		Storage: jetstream.MemoryStorage, MaxMsgs: 1000}); err != nil {
		t.Fatal(err)
	}
	restart("a tap and a stream on ew.>")

	// A node started under c's name while c runs, whose REGISTER comes
	// before c's next heartbeat: refused, the tap's silence and the
	// stream's PubAck notwithstanding.
	killNode(c)
	c = startNode(t, "c", func(o *Options) { opts(o); o.Heartbeat = 5 * time.Second })
	waitClaims(t, 20*time.Second, c)
	if _, err := c.dial(c.ws(), proto.JSON).Register(ctx, "p.c", h, nil); err != nil {
		t.Fatal(err)
	}
	twin := startNode(t, "c", opts)
	waitClaims(t, 20*time.Second, twin)
	_, err = twin.dial(twin.ws(), proto.JSON).Register(ctx, "p.c", h, nil)
	if wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("a node under the live c's name registering c's single procedure with a tap and a stream on ew.>: %v, want %s (peers same name %d)",
			err, proto.URIProcedureAlreadyExists, twin.n.Stats().PeersSameName.Load())
	}
}
