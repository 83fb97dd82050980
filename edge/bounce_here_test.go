package edge

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// nothingHeld reports what tn still holds of calls: those it sent to
// other nodes and their invocations here (MeshPending), the calls its
// budget counts and its calls in flight; nil when none.
func nothingHeld(tn *tnode) error {
	tr, err := tn.r.Traffic(context.Background())
	if err != nil {
		return err
	}
	if p, h := tn.r.MeshPending(), tn.r.Stats().CallsHeld; p != 0 || h != 0 || tr.CallsInFlight != 0 {
		return fmt.Errorf("%s: mesh pending %d, calls held %d, in flight %d", tn.name, p, h, tr.CallsInFlight)
	}
	return nil
}

// A call sent to the only callee of a registration, on another node,
// which leaves before the call reaches it while a new callee of the
// procedure registers on the caller's node (before the old one left, or
// after: a callee moving from one node to another): the call sent back
// goes to that callee. Before, the caller's node looked for another node
// only, in the registration the call was made for (gone from the node
// when its last callee left first), and failed it
// wamp.error.no_available_callee.
func TestMeshBouncedCallTakenByCallersNodeCallee(t *testing.T) {
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	waitClaims(t, 20*time.Second, nodes...)
	ctx := ctxT(t, 60*time.Second)
	h := func(who string) client.Handler {
		return func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{who}}, nil
		}
	}
	noCallees := func(uri string) func() error {
		return func() error {
			if n := a.r.MeshCallees("realm1", uri); len(n) != 0 {
				return fmt.Errorf("a still sees callees of %s on %v", uri, n)
			}
			return nil
		}
	}
	for _, leaveFirst := range []bool{false, true} {
		policies := []string{"roundrobin", "random", "first", "last"}
		if leaveFirst {
			policies = append(policies, "single")
		}
		for _, policy := range policies {
			uri := fmt.Sprintf("com.bounce.%s.%v", policy, leaveFirst)
			old := b.dial(b.rs(), proto.JSON)
			reg, err := old.Register(ctx, uri, h("b"), &client.RegisterOptions{Invoke: policy})
			if err != nil {
				t.Fatal(err)
			}
			caller := a.dial(a.ws(), proto.JSON)
			callUntil(t, caller, uri, nil)
			answers := make(chan string, 1)
			caller.OnMessage(func(m *proto.Message) {
				if m.Request == 1<<40 {
					answers <- m.Type.String() + " " + string(m.URI)
				}
			})
			// b's dispatcher held: the call waits there while its
			// callee leaves and a new one registers on a.
			release := stallControl(t, b, nil)
			m := &proto.Message{Type: proto.CodeCall, Request: 1 << 40, URI: []byte(uri)}
			if err := caller.SendRaw(m); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, func() error { // sent to b
				if n := a.r.MeshPending(); n != 1 {
					return fmt.Errorf("a has %d calls to other nodes", n)
				}
				return nil
			})
			if leaveFirst {
				if err := old.Unregister(ctx, reg); err != nil {
					t.Fatal(err)
				}
				eventually(t, 5*time.Second, noCallees(uri))
			}
			if _, err := a.dial(a.rs(), proto.CBOR).Register(ctx, uri, h("a"), &client.RegisterOptions{Invoke: policy}); err != nil {
				t.Fatal(err)
			}
			if !leaveFirst {
				if err := old.Unregister(ctx, reg); err != nil {
					t.Fatal(err)
				}
				eventually(t, 5*time.Second, noCallees(uri))
			}
			release()
			select {
			case ans := <-answers:
				if ans != "RESULT " {
					t.Errorf("%s (old callee left first: %v): the call sent back got %s, want the RESULT of a's callee", policy, leaveFirst, ans)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no answer", policy)
			}
			eventually(t, 5*time.Second, func() error { return errors.Join(nothingHeld(a), nothingHeld(b)) })
		}
	}
}
