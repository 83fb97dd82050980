package edge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// smallQueuePair starts two clustered nodes, a and b, whose mesh
// outbound queues hold 1 MiB (quickly filled) and whose peer_timeout
// (20 s) outlasts a sender held while a test fills its queue.
func smallQueuePair(t *testing.T) (nodes []*tnode, a, b *tnode) {
	t.Helper()
	nodes = clusterWith(t, func(o *Options) { o.MaxOutbound = 1 << 20; o.PeerTimeout = 20 * time.Second }, "a", "b")
	return nodes, nodes[0], nodes[1]
}

// A progressive result the callee's node cannot send to the caller's
// node (here larger than its whole outbound queue, as a full queue
// refuses any) fails the call at its caller, as it did; and the callee,
// still streaming, is interrupted and its invocation forgotten on its
// node, as on one node when a progressive result cannot reach its caller.
// Before, the callee's node kept the invocation (counted in
// max_invocations) and the callee streamed on, every result dropped at
// the caller's node, until it ended the stream by itself: an endless
// stream, never.
func TestMeshProgressiveResultRefusedInterruptsCallee(t *testing.T) {
	t.Parallel()
	nodes := clusterWith(t, func(o *Options) { o.MaxOutbound = 1 << 20 }, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 30*time.Second)
	callee := b.dial(b.rs(), proto.MsgPack)
	interrupted := make(chan error, 1)
	_, err := callee.Register(ctx, "com.stream", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		if len(inv.Args) == 0 {
			return &client.Result{}, nil // the directory check below
		}
		if err := inv.SendProgress([]any{"small"}, nil); err != nil {
			return nil, err
		}
		// Larger than the node's whole outbound queue (1 MiB): the mesh
		// refuses it.
		if err := inv.SendProgress([]any{strings.Repeat("x", 3<<19)}, nil); err != nil {
			return nil, err
		}
		// An endless stream, until interrupted.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		stop := time.After(3 * time.Second)
		for {
			select {
			case <-ctx.Done():
				interrupted <- context.Cause(ctx)
				return nil, ctx.Err()
			case <-stop:
				interrupted <- errors.New("never interrupted in 3 s")
				return &client.Result{Args: []any{"ended by itself"}}, nil
			case <-tick.C:
				if err := inv.SendProgress([]any{"more"}, nil); err != nil {
					interrupted <- err
					return nil, err
				}
			}
		}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	callUntil(t, caller, "com.stream", nil)
	var prog int
	_, err = caller.Call(ctx, "com.stream", []any{"go"}, nil, &client.CallOptions{OnProgress: func(*client.Result) { prog++ }})
	if u := wampErr(err); u != proto.URIUnavailable && u != proto.URIPayloadSizeExceeded {
		t.Fatalf("the call: %v (after %d progressive results), want unavailable or payload_size_exceeded", err, prog)
	}
	select {
	case cause := <-interrupted:
		if !errors.Is(cause, client.ErrInterrupted) {
			t.Fatalf("the callee, streaming on: %v; want it interrupted", cause)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the callee's handler did not end")
	}
	waitNothingPending(t, nodes...)
}

// A CANCEL in kill mode whose INTERRUPT the caller's node cannot send
// (its mesh outbound queue full) ends the call at once, as killnowait
// does: the caller gets wamp.error.canceled. Before, the call was marked
// canceling and nothing was sent: the caller got no answer (a second
// CANCEL in kill mode did nothing either) until the callee answered of
// its own accord, for ever for one that waits for its INTERRUPT.
func TestMeshKillCancelRefusedEndsCall(t *testing.T) {
	t.Parallel()
	nodes, a, b := smallQueuePair(t)
	ctx := ctxT(t, 30*time.Second)
	callee := b.dial(b.rs(), proto.MsgPack)
	blocked, release := make(chan struct{}, 1), make(chan struct{})
	if _, err := callee.Register(ctx, "com.k", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		if len(inv.Args) > 0 && inv.Args[0] == "block" {
			blocked <- struct{}{}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-release:
			}
		}
		return &client.Result{}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	callUntil(t, caller, "com.k", nil)
	var mu sync.Mutex
	answers := map[uint64]string{}
	fence := make(chan struct{}, 1)
	caller.OnMessage(func(m *proto.Message) {
		if m.Type != proto.CodeError && m.Type != proto.CodeResult {
			return
		}
		if m.Request == 1<<50 {
			fence <- struct{}{}
			return
		}
		mu.Lock()
		answers[m.Request] = m.Type.String() + " " + string(m.URI)
		mu.Unlock()
	})
	answer := func(id uint64) string {
		mu.Lock()
		defer mu.Unlock()
		return answers[id]
	}
	send := func(m *proto.Message) {
		t.Helper()
		if err := caller.SendRaw(m); err != nil {
			t.Fatal(err)
		}
	}
	// sync waits until A's shard has run what the caller sent before: a
	// call it answers itself (no such procedure) comes back after.
	sync := func() {
		t.Helper()
		send(&proto.Message{Type: proto.CodeCall, Request: 1 << 50, URI: []byte("com.none")})
		select {
		case <-fence:
		case <-time.After(10 * time.Second):
			t.Fatal("no answer from the caller's node")
		}
	}
	call := func(id uint64, args ...any) {
		m := &proto.Message{Type: proto.CodeCall, Request: id, URI: []byte("com.k")}
		m.Args, _ = proto.EncodeValue(proto.JSON, args)
		send(m)
	}
	cancel := func(id uint64, mode string) {
		m := &proto.Message{Type: proto.CodeCancel, Request: id}
		m.Opt.SetString(proto.KeyMode, mode)
		send(m)
	}
	const target = 1 << 40
	call(target, "block")
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not reach its callee")
	}
	// A's outbound queue held and filled with calls, big then small,
	// then with INTERRUPTs of some of them, until one is refused.
	_, releaseSender := holdSender(t, a.n)
	id := uint64(target + 1)
	var queued []uint64
	for _, size := range []int{16 << 10, 1} {
		for ; ; id++ {
			call(id, "fill", strings.Repeat("x", size))
			sync()
			if answer(id) != "" {
				break // refused: the queue is full for such a call
			}
			queued = append(queued, id)
		}
		id++
	}
	// The messages that end a call have a reserve past the calls' bound
	// and then wait for room (SendEnd): both filled with envelopes B's
	// router drops ('Z').
	var toB route.MeshNode
	for node, subj := range a.n.peers.view.Load().subj {
		if subj == nodeSubject("b", "m") {
			toB = node
		}
	}
	junk := make([]byte, 4<<10)
	junk[0] = 'Z'
	for _, size := range []int{len(junk), 512, 1} {
		for a.n.SendEnd(toB, junk[:size]) == nil {
		}
	}
	failed := a.r.MeshStats().SendFailed.Load()
	for _, q := range queued {
		cancel(q, "killnowait")
		sync()
		if a.r.MeshStats().SendFailed.Load() > failed {
			break
		}
	}
	if a.r.MeshStats().SendFailed.Load() == failed {
		t.Fatal("the caller's node queued every INTERRUPT: the test did not fill its outbound queue")
	}
	cancel(target, "kill")
	sync()
	if got := answer(target); got != "ERROR "+proto.URICanceled {
		t.Errorf("a CANCEL in kill mode the caller's node could not pass on: %q, want the call ended with ERROR %s", got, proto.URICanceled)
	}
	releaseSender()
	close(release)
	waitNothingPending(t, nodes...)
}

// Every chunk of a progressive call invocation whose caller is on another
// node carries what the same chunk carries from a caller on the callee's
// node: the caller's identity when it is disclosed, and receive_progress
// when the caller asked for progressive results (the options of the
// initiating CALL hold for every chunk). Before, the chunks after the
// first came from another node with empty Details.
func TestMeshProgressiveInvocationChunksKeepDetails(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 30*time.Second)
	caller := a.dial(a.ws(), proto.JSON)
	authid := caller.Details()["authid"]
	for _, on := range []*tnode{a, b} { // the caller's node, then another
		callee := on.dial(on.rs(), proto.CBOR)
		got := make(chan []*client.Invocation, 1)
		if _, err := callee.Register(ctx, "com.chunks."+on.name, func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
			chunks := []*client.Invocation{inv}
			for cur := inv; cur.Progress; {
				next, err := cur.Next(ctx)
				if err != nil {
					return nil, err
				}
				chunks = append(chunks, next)
				cur = next
			}
			if len(inv.Args) > 0 {
				got <- chunks
			}
			return &client.Result{}, nil
		}, &client.RegisterOptions{DiscloseCaller: true}); err != nil {
			t.Fatal(err)
		}
		callUntil(t, caller, "com.chunks."+on.name, nil)
		pc, err := caller.CallProgressive(ctx, "com.chunks."+on.name, &client.CallOptions{ReceiveProgress: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := pc.Send([]any{i}, nil, i == 2); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := pc.Result(ctx); err != nil {
			t.Fatal(err)
		}
		for i, c := range <-got {
			if c.Caller != caller.ID() || c.CallerAuthID != authid || c.CallerAuthRole != "anonymous" || c.Details["receive_progress"] != true {
				t.Errorf("callee on %s, chunk %d of 3: caller %d %q %q, receive_progress %v; want %d %q anonymous, true",
					on.name, i+1, c.Caller, c.CallerAuthID, c.CallerAuthRole, c.Details["receive_progress"], caller.ID(), authid)
			}
		}
	}
	waitNothingPending(t, nodes...)
}
