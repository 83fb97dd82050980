package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A callee's answer that its node cannot queue for the caller's node (its
// mesh outbound queue full of calls) is replaced by a small error
// (meshResultLost), which must reach the caller: it ends a call another
// node waits for. Before, that error went through the same full queue and
// was refused too: the caller waited for its timeout, for ever without
// one (rpc.call_timeout is off by default).
func TestMeshAnswerRefusedByFullQueueStillAnswered(t *testing.T) {
	t.Parallel()
	nodes, a, b := smallQueuePair(t)
	ctx := ctxT(t, 30*time.Second)

	// The callee of the call that will be answered, on b; a sink on a for
	// the calls that fill b's queue.
	callee := b.dial(b.rs(), proto.MsgPack)
	blocked, release := make(chan struct{}, 1), make(chan struct{})
	if _, err := callee.Register(ctx, "com.answer", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		if len(inv.Args) > 0 && inv.Args[0] == "block" {
			blocked <- struct{}{}
			<-release
		}
		// Larger than the room a refused 1-byte call leaves: refused.
		return &client.Result{Args: []any{strings.Repeat("r", 4<<10)}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	callUntil(t, caller, "com.answer", nil)
	filler := sinkFiller(t, ctx, a, b)

	answered := make(chan error, 1)
	go func() {
		_, err := caller.Call(ctx, "com.answer", []any{"block"}, nil, nil)
		answered <- err
	}()
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not reach its callee")
	}

	// b's outbound queue held and filled with calls to a.
	releaseSender := fillOutbound(t, b, filler, "com.sink")

	// The callee answers now: its RESULT cannot be queued, nor could the
	// error that replaces it.
	failed := b.r.MeshStats().SendFailed.Load()
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for b.r.MeshStats().SendFailed.Load() == failed {
		if time.Now().After(deadline) {
			t.Fatal("b queued the callee's RESULT: the test did not fill its outbound queue")
		}
		time.Sleep(5 * time.Millisecond)
	}
	releaseSender()
	select {
	case err := <-answered:
		if u := wampErr(err); u != proto.URIUnavailable {
			t.Fatalf("the call whose RESULT b could not queue: %v, want ERROR %s", err, proto.URIUnavailable)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the caller got no answer 10 s after b's queue drained: the error replacing the callee's RESULT was lost")
	}
	waitNothingPending(t, nodes...)
}

// The same on the caller's node's side: an error that ends a call (here
// the callee leaving), arriving while that node's inbound queue is full
// of calls and results (its control dispatcher stalled), is kept in a
// reserve and reaches the caller once the dispatcher runs again. Before,
// it was dropped with them (ControlFull): the caller waited for its
// timeout, for ever without one.
func TestMeshEndKeptByFullInboundQueue(t *testing.T) {
	t.Parallel()
	const maxInbound = 1 << 20
	nodes := clusterWith(t, func(o *Options) { o.MaxInbound = maxInbound; o.PeerTimeout = 20 * time.Second }, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 30*time.Second)
	callee := b.dial(b.rs(), proto.MsgPack)
	started := make(chan struct{}, 1)
	// The handler outlasts its session: the Go client's Close lets a
	// handler that returns when its context ends answer before the
	// GOODBYE (ae0cd2c), and that RESULT, a result like any, is what a
	// full inbound queue drops; this test is of the error the router
	// sends when the callee leaves without answering.
	leave := make(chan struct{})
	var leaveOnce sync.Once
	t.Cleanup(func() { leaveOnce.Do(func() { close(leave) }) })
	if _, err := callee.Register(ctx, "com.hold", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		if len(inv.Args) > 0 {
			started <- struct{}{}
			<-leave
		}
		return &client.Result{}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	callUntil(t, caller, "com.hold", nil)
	answered := make(chan error, 1)
	go func() {
		_, err := caller.Call(ctx, "com.hold", []any{"hold"}, nil, nil)
		answered <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not reach its callee")
	}

	// a's control dispatcher stalled, its inbound budget filled to the
	// byte with messages that look like b's route envelopes.
	release := stallControl(t, a, nil)
	nc, err := clientPort(a.n)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fill := &nats.Msg{Subject: nodeSubject("a", "m"), Reply: nodeInbox("b")}
	minCost := msgCost(fill)
	eventually(t, 10*time.Second, func() error {
		a.n.in.b.mu.Lock()
		room := a.n.in.b.max - a.n.in.b.used
		a.n.in.b.mu.Unlock()
		if room < minCost {
			return nil
		}
		fill.Data = make([]byte, min(room-minCost, 64<<10))
		if len(fill.Data) > 0 {
			fill.Data[0] = 'Z' // no envelope kind: dropped by the router
		}
		nc.PublishMsg(fill)
		nc.Flush()
		return fmt.Errorf("%d bytes of room", room)
	})

	// The callee leaves: b answers the caller canceled, then tells the
	// mesh its registration went (a directory change, which a queues
	// in its own reserve, behind the answer).
	dir := a.n.ctlq.takenBy()[inDir]
	go callee.Close() // it waits for the handler, released at the end
	eventually(t, 10*time.Second, func() error {
		if a.n.ctlq.takenBy()[inDir] == dir {
			return errors.New("b's directory change has not reached a")
		}
		return nil
	})
	release()
	select {
	case err := <-answered:
		if u := wampErr(err); u != proto.URICanceled {
			t.Fatalf("the call whose callee left: %v, want ERROR %s", err, proto.URICanceled)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the caller got no answer 10 s after a's dispatcher ran again (%d control messages dropped): the error ending its call was lost", a.n.Stats().ControlFull.Load())
	}
	leaveOnce.Do(func() { close(leave) })
	waitNothingPending(t, nodes...)
}

// A call its callee's node sends back (a bounce: the callee unregistered
// before the call reached it, the caller's node not knowing yet) while
// that node's outbound queue is full: the bounce, the whole call
// envelope, is refused, and a small error takes its place, which the
// caller's node reroutes or ends no_available_callee. Before, the refused
// bounce was only counted (SendFailed): the caller waited for its
// timeout, for ever without one.
func TestMeshBounceRefusedByFullQueueStillAnswered(t *testing.T) {
	t.Parallel()
	nodes, a, b := smallQueuePair(t)
	ctx := ctxT(t, 30*time.Second)
	callee := b.dial(b.rs(), proto.MsgPack)
	reg, err := callee.Register(ctx, "com.gone", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	}, &client.RegisterOptions{Invoke: "roundrobin"})
	if err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	callUntil(t, caller, "com.gone", nil)
	filler := sinkFiller(t, ctx, a, b)

	releaseSender := fillOutbound(t, b, filler, "com.sink")
	// The callee unregisters: b's directory change waits behind the held
	// sender, so a still sends calls of com.gone to b.
	if err := callee.Unregister(ctx, reg); err != nil {
		t.Fatal(err)
	}
	failed := b.r.MeshStats().SendFailed.Load()
	answered := make(chan error, 1)
	go func() {
		// Larger than the room a refused 1-byte call leaves: its bounce
		// is refused.
		_, err := caller.Call(ctx, "com.gone", []any{strings.Repeat("y", 4<<10)}, nil, nil)
		answered <- err
	}()
	eventually(t, 10*time.Second, func() error {
		if b.r.MeshStats().SendFailed.Load() == failed {
			return errors.New("b has not refused to queue anything yet")
		}
		return nil
	})
	releaseSender()
	select {
	case err := <-answered:
		if u := wampErr(err); u != proto.URINoAvailableCallee {
			t.Fatalf("the call b could not send back: %v, want ERROR %s", err, proto.URINoAvailableCallee)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the caller got no answer 10 s after b's queue drained: the call b could not send back was lost")
	}
	waitNothingPending(t, nodes...)
}

// sinkFiller registers com.sink, which answers at once, on sinkNode and
// returns a session on fillerNode that has called it (the mesh knows
// it): fillOutbound's filler.
func sinkFiller(t *testing.T, ctx context.Context, sinkNode, fillerNode *tnode) *client.Session {
	t.Helper()
	sink := sinkNode.dial(sinkNode.rs(), proto.MsgPack)
	if _, err := sink.Register(ctx, "com.sink", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	filler := fillerNode.dial(fillerNode.ws(), proto.JSON)
	callUntil(t, filler, "com.sink", nil)
	return filler
}

// fillOutbound holds tn's sender and fills its outbound queue with calls
// of filler (a session on tn) to proc (a callee on another node), big
// then small, until one is refused: the queue is full for calls and
// results, to within less than a 1-byte call's cost. It returns the
// release of the sender (also run at cleanup).
func fillOutbound(t *testing.T, tn *tnode, filler *client.Session, proc string) (release func()) {
	t.Helper()
	var mu sync.Mutex
	refused := map[uint64]bool{}
	fence := make(chan struct{}, 1)
	filler.OnMessage(func(m *proto.Message) {
		if m.Type != proto.CodeError {
			return
		}
		if m.Request == 1<<50 {
			fence <- struct{}{}
			return
		}
		mu.Lock()
		refused[m.Request] = true
		mu.Unlock()
	})
	sync := func() {
		t.Helper()
		if err := filler.SendRaw(&proto.Message{Type: proto.CodeCall, Request: 1 << 50, URI: []byte("com.none")}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-fence:
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer from %s", tn.name)
		}
	}
	_, release = holdSender(t, tn.n)
	id := uint64(1 << 40)
	for _, size := range []int{16 << 10, 1} {
		for ; ; id++ {
			m := &proto.Message{Type: proto.CodeCall, Request: id, URI: []byte(proc)}
			m.Args, _ = proto.EncodeValue(proto.JSON, []any{strings.Repeat("x", size)})
			if err := filler.SendRaw(m); err != nil {
				t.Fatal(err)
			}
			sync()
			mu.Lock()
			r := refused[id]
			mu.Unlock()
			if r {
				break // the queue is full for such a call
			}
		}
		id++
	}
	return release
}

// More messages that end a call than the outbound queue's reserve holds
// (here the reserve filled, then killnowait INTERRUPTs of calls, sent
// while the caller's node's sender is held and its queue full): those
// past the reserve wait for room and go once the queue drains. Before,
// they were refused and only counted: each such callee was never
// interrupted, and its node held the invocation (one of max_invocations)
// until the callee answered, for ever for one that waits for its
// INTERRUPT.
func TestMeshEndsPastReserveSentOnceRoom(t *testing.T) {
	t.Parallel()
	nodes, a, b := smallQueuePair(t)
	ctx := ctxT(t, 30*time.Second)
	callee := b.dial(b.rs(), proto.MsgPack)
	var running, interrupted atomic.Int64
	if _, err := callee.Register(ctx, "com.wait", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		if len(inv.Args) == 0 {
			return &client.Result{}, nil // callUntil's
		}
		running.Add(1)
		<-ctx.Done() // until interrupted
		interrupted.Add(1)
		return nil, ctx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	callUntil(t, caller, "com.wait", nil)
	filler := sinkFiller(t, ctx, b, a)

	// Calls that each wait for their INTERRUPT, all running on b.
	const calls = 16
	fence := make(chan struct{}, 1)
	caller.OnMessage(func(m *proto.Message) {
		if m.Type == proto.CodeError && m.Request == 1<<50 {
			fence <- struct{}{}
		}
	})
	for i := range calls {
		m := &proto.Message{Type: proto.CodeCall, Request: uint64(1<<40 + i), URI: []byte("com.wait")}
		m.Args, _ = proto.EncodeValue(proto.JSON, []any{"wait"})
		if err := caller.SendRaw(m); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() error {
		if n := running.Load(); n < calls {
			return fmt.Errorf("%d of %d calls running on b", n, calls)
		}
		return nil
	})

	// a's queue held and full, its reserve for the messages that end a
	// call filled with envelopes b's router drops ('Z'); then every call
	// canceled killnowait: their INTERRUPTs find no room.
	releaseSender := fillOutbound(t, a, filler, "com.sink")
	var toB route.MeshNode
	for node, subj := range a.n.peers.view.Load().subj {
		if subj == nodeSubject("b", "m") {
			toB = node
		}
	}
	if toB == 0 {
		t.Fatal("a does not know b")
	}
	junk := make([]byte, 4<<10)
	junk[0] = 'Z'
	over := itemCost(nodeSubject("b", "m"), a.n.inbox, nil)
	for {
		q := a.n.out
		q.mu.Lock()
		room := q.limit(classEnd) - q.bytes
		q.mu.Unlock()
		if room < over+1 {
			break
		}
		if err := a.n.SendEnd(toB, junk[:min(room-over, int64(len(junk)))]); err != nil {
			t.Fatal(err)
		}
	}
	failed := a.r.MeshStats().SendFailed.Load()
	for i := range calls {
		m := &proto.Message{Type: proto.CodeCancel, Request: uint64(1<<40 + i)}
		m.Opt.SetString(proto.KeyMode, "killnowait")
		if err := caller.SendRaw(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := caller.SendRaw(&proto.Message{Type: proto.CodeCall, Request: 1 << 50, URI: []byte("com.none")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fence:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer from a")
	}
	if n := a.r.MeshStats().SendFailed.Load() - failed; n != 0 {
		t.Errorf("a refused %d of %d INTERRUPTs past the reserve, want them kept until there is room", n, calls)
	}
	releaseSender()
	eventually(t, 10*time.Second, func() error {
		if n := interrupted.Load(); n < calls {
			return fmt.Errorf("%d of %d callees interrupted", n, calls)
		}
		return nil
	})
	waitNothingPending(t, nodes...)
}
