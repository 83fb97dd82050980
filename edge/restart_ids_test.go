package edge

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A caller's node dies (killed: it says no goodbye) with calls in flight
// on another node's callee, and restarts under its name; the other node
// has not yet taken the new life's heartbeat (NATS is at most once: a lost
// one is made up for by the next, half a second later), so it still
// holds the earlier life's invocations under the node's name. The new
// life numbered its calls as the earlier one did (a sequence from 1 per
// shard): its first calls to that callee took the ids of calls still in
// flight there and failed wamp.error.protocol_violation ("call id already
// in use"), and a result of the earlier life's call, coming back while
// the new life's call of that id waited, would be delivered to the new
// life's caller, another session. A router's invocation ids now start at
// a random point of their sequence.
func TestRestartedCallerNodeCallIDsFresh(t *testing.T) {
	t.Parallel()
	url := jsServer(t)
	a := startNode(t, "a", func(o *Options) { o.NatsURL = url })
	b := startNode(t, "b", func(o *Options) { o.NatsURL = url })
	waitMesh(t, a, b)
	ctx := ctxT(t, 20*time.Second)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	var mu sync.Mutex
	calls := 0
	h := func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		mu.Lock()
		calls++
		first := calls <= 8
		mu.Unlock()
		if first { // the earlier life's calls stay in flight
			select {
			case <-hold:
			case <-ctx.Done():
			}
			return &client.Result{Args: []any{"old"}}, nil
		}
		return &client.Result{Args: []any{"new"}}, nil
	}
	if _, err := b.dial(b.ws(), proto.JSON).Register(ctx, "com.slow", h, nil); err != nil {
		t.Fatal(err)
	}
	// 8 callers on a, on both of its shards, each with a call in flight.
	for range 8 {
		s := a.dial(a.ws(), proto.JSON)
		callUntilInFlight := make(chan struct{})
		go func() {
			close(callUntilInFlight)
			// Until a has heard of b's registration, the call is
			// no_such_procedure (a loaded machine: CI saw fewer than 8
			// in flight after 5 s).
			for {
				_, err := s.Call(ctx, "com.slow", nil, nil, nil)
				if e, ok := err.(*client.Error); !ok || e.URI != proto.URINoSuchProcedure {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		<-callUntilInFlight
	}
	eventually(t, 15*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if calls < 8 {
			return errString("calls not in flight yet")
		}
		return nil
	})
	// b takes none of the new life's heartbeats for now.
	bootA := a.n.boot
	hook := func(ms []*nats.Msg) {
		for _, m := range ms {
			if m.Subject == subjHeartbeat && senderOf(m.Reply) == "a" && len(m.Data) >= 8 && binary.LittleEndian.Uint64(m.Data) != bootA {
				m.Subject = subjRoot + "b.lost"
			}
		}
	}
	b.n.testHookControl.Store(&hook)
	// a is killed: its NATS connection goes first, so that nothing it
	// would say on its way out reaches b.
	a.n.nc.Close()
	a.stop()
	a2 := startNode(t, "a", func(o *Options) { o.NatsURL = url })
	s2 := a2.dial(a2.ws(), proto.JSON)
	for i := range 4 {
		res := callUntil(t, s2, "com.slow", nil)
		if len(res.Args) != 1 || res.Args[0] != "new" {
			t.Fatalf("call %d of the restarted a's caller: %v", i, res.Args)
		}
		s := a2.dial(a2.ws(), proto.JSON) // another shard, maybe
		if _, err := s.Call(ctx, "com.slow", nil, nil, nil); err != nil {
			t.Fatalf("call of another caller of the restarted a, while b holds the earlier life's calls: %v", err)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
