package edge

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// countErrors is a slog handler that counts the error records whose
// message contains sub.
type countErrors struct {
	sub string
	n   *atomic.Int64
}

func (h countErrors) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h countErrors) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.sub) {
		h.n.Add(1)
	}
	return nil
}
func (h countErrors) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countErrors) WithGroup(string) slog.Handler      { return h }

// TestMeshVersionMismatch: node c of a 3-node cluster speaks another mesh
// version (a later one, or none, as a release before the handshake). a
// and b mesh with each other and exclude c: it is not a peer, its
// registrations are not callable from a, its events do not reach a, what
// it sends a is dropped and counted, a logs it once and counts it in
// PeersIncompatible; c upgraded (restarted at a's version) is a peer
// again.
func TestMeshVersionMismatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ver  int    // c's testMeshVersion
		want uint64 // the version a sees for c
	}{
		{"later", meshVersion + 1, meshVersion + 1},
		{"none", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logged atomic.Int64
			nodes := clusterNoWait(t, func(o *Options) {
				switch o.Name {
				case "a":
					o.Logger = slog.New(countErrors{"another mesh version", &logged})
				case "c":
					o.testMeshVersion = tc.ver
				}
			}, "a", "b", "c")
			a, b, c := nodes[0], nodes[1], nodes[2]
			eventually(t, 15*time.Second, func() error {
				if got := a.n.Peers(); !slices.Equal(got, []string{"b"}) {
					return fmt.Errorf("a sees peers %v", got)
				}
				if got := b.n.Peers(); !slices.Equal(got, []string{"a"}) {
					return fmt.Errorf("b sees peers %v", got)
				}
				if got := a.n.IncompatiblePeers(); !slices.Equal(got, []IncompatiblePeer{{"c", tc.want}}) {
					return fmt.Errorf("a: incompatible %v", got)
				}
				return nil
			})
			if g := a.n.Stats().PeersIncompatible.Load(); g != 1 {
				t.Fatalf("PeersIncompatible = %d, want 1", g)
			}
			ctx := ctxT(t, 30*time.Second)
			handler := func(who string) client.Handler {
				return func(context.Context, *client.Invocation) (*client.Result, error) {
					return &client.Result{Args: []any{who}}, nil
				}
			}
			waitClaims(t, 20*time.Second, a, b, c)
			cs := c.dial(c.rs(), proto.JSON)
			if _, err := cs.Register(ctx, "com.v.proc", handler("c"), nil); err != nil {
				t.Fatal(err)
			}
			bs := b.dial(b.rs(), proto.JSON)
			if _, err := bs.Register(ctx, "com.v.b", handler("b"), nil); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var got []string
			as := a.dial(a.ws(), proto.JSON)
			if _, err := as.Subscribe(ctx, "com.v.topic", func(e *client.Event) {
				mu.Lock()
				got = append(got, fmt.Sprint(e.Args[0]))
				mu.Unlock()
			}, nil); err != nil {
				t.Fatal(err)
			}
			// The mesh between a and b works: b's registration reaches a.
			if res := callUntil(t, as, "com.v.b", nil); res.Args[0] != "b" {
				t.Fatalf("com.v.b: %v", res.Args)
			}
			// c's registration is not used: as if c were not there. (Had
			// c been a peer, its directory would have reached a with b's.)
			for range 5 {
				_, err := as.Call(ctx, "com.v.proc", nil, nil, nil)
				if wampErr(err) != proto.URINoSuchProcedure {
					t.Fatalf("call to c's procedure from a: %v, want %s", err, proto.URINoSuchProcedure)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// But the procedure stays exclusive: c, alive, holds its claim.
			if _, err := as.Register(ctx, "com.v.proc", handler("a"), nil); wampErr(err) != proto.URIProcedureAlreadyExists {
				t.Fatalf("a registered the single procedure c holds: %v", err)
			}
			// Events: c's do not reach a, b's do.
			eventually(t, 10*time.Second, func() error {
				if err := cs.Publish(ctx, "com.v.topic", []any{"c"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
					t.Fatal(err)
				}
				if err := bs.Publish(ctx, "com.v.topic", []any{"b"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if !slices.Contains(got, "b") {
					return fmt.Errorf("a received %v", got)
				}
				return nil
			})
			time.Sleep(200 * time.Millisecond)
			mu.Lock()
			if slices.Contains(got, "c") {
				t.Errorf("a received an event from c: %v", got)
			}
			mu.Unlock()
			// What c sends a is dropped and counted, not delivered.
			before := a.n.Stats().VersionMismatch.Load()
			bad := a.r.MeshStats().BadEnvelopes.Load()
			c.n.out.push(opPublish, nodeSubject("a", "m"), c.n.inbox, []byte("not an envelope of a's version"), nil)
			eventually(t, 5*time.Second, func() error {
				if n := a.n.Stats().VersionMismatch.Load(); n <= before {
					return fmt.Errorf("version_mismatch %d", n)
				}
				return nil
			})
			if n := a.r.MeshStats().BadEnvelopes.Load(); n != bad {
				t.Errorf("the message from c reached a's router (bad envelopes %d → %d)", bad, n)
			}
			// Logged once, heartbeats after heartbeats.
			if n := logged.Load(); n != 1 {
				t.Errorf("a logged c's version %d times, want once", n)
			}

			// c upgraded: stopped and started again at a's version, under
			// its name and address. Its goodbye clears it at once.
			copts := c.n.opts
			c.stop()
			eventually(t, 10*time.Second, func() error {
				if got := a.n.IncompatiblePeers(); len(got) != 0 || a.n.Stats().PeersIncompatible.Load() != 0 {
					return fmt.Errorf("a: incompatible %v after c left", got)
				}
				return nil
			})
			c2 := startNode(t, "c", func(o *Options) { o.Cluster = copts.Cluster })
			waitMesh(t, a, b, c2)
			cs2 := c2.dial(c2.rs(), proto.JSON)
			if _, err := cs2.Register(ctx, "com.v.proc", handler("c2"), nil); err != nil {
				t.Fatal(err)
			}
			if res := callUntil(t, as, "com.v.proc", nil); res.Args[0] != "c2" {
				t.Fatalf("com.v.proc after the upgrade: %v", res.Args)
			}
			if got := a.n.IncompatiblePeers(); len(got) != 0 {
				t.Errorf("a: incompatible %v after c's upgrade", got)
			}
		})
	}
}
