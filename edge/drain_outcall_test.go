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

// TestDrainDeadlineCallerOfOtherNodesCallee: A's caller has a call in
// progress on B's callee, which never answers; at A's drain deadline the
// caller is answered wamp.error.canceled (the router shut down) before its
// GOODBYE, and B's callee is interrupted once A has left, not after
// peer_timeout (A said goodbye).
func TestDrainDeadlineCallerOfOtherNodesCallee(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b")
	a, b := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	calleeB := b.dial(b.rs(), proto.MsgPack)
	started := make(chan struct{}, 1)
	interrupted := make(chan time.Time, 1)
	if _, err := calleeB.Register(ctx, "com.b.never", func(ictx context.Context, _ *client.Invocation) (*client.Result, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ictx.Done()
		select {
		case interrupted <- time.Now():
		default:
		}
		return nil, ictx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	callerA := a.dial(a.ws(), proto.JSON)
	eventually(t, 10*time.Second, func() error {
		res, err := callerA.Call(ctx, "wamp.registration.lookup", []any{"com.b.never"}, nil, nil)
		if err != nil || len(res.Args) == 0 || res.Args[0] == nil {
			return fmt.Errorf("com.b.never not yet known on A: %v", err)
		}
		return nil
	})
	fromA := goCall(callerA, "com.b.never")
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the call did not reach B's callee")
	}
	const deadline = 500 * time.Millisecond
	err := stopDrained(a, deadline)
	stoppedAt := time.Now()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain with a call in progress on B's callee: %v, want its deadline passed", err)
	}
	select {
	case o := <-fromA:
		var we *client.Error
		if !errors.As(o.err, &we) || we.URI != proto.URICanceled {
			t.Fatalf("A's call still in progress at the drain's deadline: %v %v, want %s", o.res, o.err, proto.URICanceled)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("A's call still in progress at the drain's deadline got no answer within 15 s")
	}
	select {
	case at := <-interrupted:
		t.Logf("B's callee interrupted %v after A stopped", at.Sub(stoppedAt))
	case <-time.After(15 * time.Second):
		t.Fatal("B's callee was not interrupted within 15 s of A's stop")
	}
}

// TestStopWithoutDrainAnswersOtherNodesCallers: an embedder's Shutdown of
// A's engine and node, without a Drain, with B's caller's call in progress
// on A's callee (which never answers) and A's caller's call on B's callee
// (which never answers): both callers get ERROR canceled, B's callee is
// interrupted, and B's next call of the shared registration goes to B.
func TestStopWithoutDrainAnswersOtherNodesCallers(t *testing.T) {
	t.Parallel()
	a, _, c, calleeA, calleeB := drainCluster(t)
	ctx := ctxT(t, 30*time.Second)
	never := func(s *client.Session, proc string) (<-chan struct{}, <-chan struct{}) {
		started, interrupted := make(chan struct{}, 1), make(chan struct{}, 1)
		if _, err := s.Register(ctx, proc, func(ictx context.Context, _ *client.Invocation) (*client.Result, error) {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ictx.Done()
			select {
			case interrupted <- struct{}{}:
			default:
			}
			return nil, ictx.Err()
		}, nil); err != nil {
			t.Fatal(err)
		}
		return started, interrupted
	}
	startedA, _ := never(calleeA, "com.a.never")
	startedB, interruptedB := never(calleeB, "com.b.never")
	callerA := a.dial(a.rs(), proto.CBOR)
	callerB := c.dial(c.ws(), proto.JSON) // C: B's own callers take B's callee
	known := func(s *client.Session, proc string) {
		eventually(t, 10*time.Second, func() error {
			res, err := s.Call(ctx, "wamp.registration.lookup", []any{proc}, nil, nil)
			if err != nil || len(res.Args) == 0 || res.Args[0] == nil {
				return fmt.Errorf("%s not yet known: %v", proc, err)
			}
			return nil
		})
	}
	known(callerA, "com.b.never")
	known(callerB, "com.a.never")
	sharedSeen(t, callerB)
	fromA, fromB := goCall(callerA, "com.b.never"), goCall(callerB, "com.a.never")
	for _, ch := range []<-chan struct{}{startedA, startedB} {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("a call did not reach its callee")
		}
	}
	a.stop()
	for name, ch := range map[string]<-chan callOutcome{"A's caller": fromA, "B's caller": fromB} {
		select {
		case o := <-ch:
			var we *client.Error
			if !errors.As(o.err, &we) || we.URI != proto.URICanceled {
				t.Errorf("%s's call in progress at A's stop: %v %v, want %s", name, o.res, o.err, proto.URICanceled)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("%s's call in progress at A's stop got no answer within 15 s", name)
		}
	}
	select {
	case <-interruptedB:
	case <-time.After(15 * time.Second):
		t.Error("B's callee was not interrupted within 15 s of A's stop")
	}
	for i := range 4 {
		res, err := callerB.Call(ctx, "com.shared", nil, nil, nil)
		if err != nil || len(res.Args) != 1 || res.Args[0] != "B" {
			t.Fatalf("call %d of com.shared from B after A's stop: %v %v, want B's answer", i, res, err)
		}
	}
}
