package edge

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
)

// The outbound queue keeps a reserve past its bound for the node's own
// messages, so that a flood cannot silence its heartbeats. Meta queries
// and their answers are sized and repeated at will by clients (a
// wamp.session.list of a large realm, called in a loop): they used the
// reserve too, and could fill it. They now stay within the bound, as
// route envelopes do.
func TestMetaAnswersCannotTakeTheHeartbeatReserve(t *testing.T) {
	const max = 1 << 20
	q := newOutq(max)
	answer := make([]byte, 64<<10)
	n := 0
	for q.pushBulk("ew.n.b.a.1", "ew.n.a", answer) == nil {
		n++
		if n > 100 {
			t.Fatal("the queue took more than its bound and reserve of answers")
		}
	}
	if got := int64(n) * int64(len(answer)); got > max {
		t.Fatalf("answers took %d bytes, past the %d-byte bound", got, max)
	}
	// The reserve is intact: a heartbeat and directory changes still go.
	for i := 0; i < 4; i++ {
		if err := q.push(opPublish, subjHeartbeat, "ew.n.a", make([]byte, 64<<10), nil); err != nil {
			t.Fatalf("heartbeat %d refused with the queue full of answers: %v", i, err)
		}
	}
}

// Events (and meta traffic) fill at most three quarters of the queue: a
// client flooding large events used to fill all of it, and every other
// session's cross-node calls and results failed with
// wamp.error.unavailable until the sender caught up.
func TestEventFloodLeavesRoomForCalls(t *testing.T) {
	const max = 1 << 20
	q := newOutq(max)
	event := make([]byte, 16<<10)
	var queued int64
	for q.pushEnv(classBulk, "ew.e.r.t", "", event) == nil {
		queued += int64(len(event))
		if queued > 2*max {
			t.Fatal("the queue took events past its bound")
		}
	}
	if queued > max-max/4 {
		t.Fatalf("events took %d bytes of a %d-byte queue, past three quarters", queued, max)
	}
	for q.pushEnv(classBulk, "ew.e.r.t", "", make([]byte, 1)) == nil { // what room is left in the share
	}
	if err := q.pushBulk("ew.n.b.q", "ew.n.a", make([]byte, 1)); err == nil {
		t.Fatal("a meta query went past the events' share")
	}
	// A quarter of the queue is left to calls and their answers ...
	call := make([]byte, 4<<10)
	var calls int64
	for q.pushEnv(classRoute, "ew.n.b", "ew.n.a", call) == nil {
		calls += int64(len(call))
	}
	if calls < max/4-int64(len(event)) {
		t.Fatalf("calls got %d bytes behind the flood, want about a quarter of %d", calls, max)
	}
	// ... and the node's own messages still have their reserve.
	if err := q.push(opPublish, subjHeartbeat, "ew.n.a", make([]byte, 64<<10), nil); err != nil {
		t.Fatalf("heartbeat refused: %v", err)
	}
}

// The bound counts a queued item's own size and its subject, not only its
// payload: tiny events to ever new topics (a subject each) queued several
// times the bound in items and subjects while the sender was stalled. A
// burst's item slices are not kept once sent.
func TestOutboundCountsItemsAndSubjects(t *testing.T) {
	const max = 1 << 20
	q := newOutq(max)
	n := 0
	for q.pushEnv(classBulk, fmt.Sprintf("ew.e2.realm1.com.example.topic.%08d", n), "", []byte{1}) == nil {
		n++
		if n > 1<<20 {
			t.Fatal("the queue took more than a million one-byte events")
		}
	}
	// 40 bytes of subject, 1 of payload and the item's 64: about 7,490
	// within the events' three quarters (before: 786,432 one-byte
	// payloads, 120 MB of items and subjects for a 1 MiB bound).
	if per := int64(max-max/4) / int64(n); per < 100 {
		t.Fatalf("%d one-byte events queued within %d bytes: %d bytes each, want their items and subjects counted", n, max-max/4, per)
	}
	// Interest changes are counted but never refused.
	if err := q.push(opSubscribe, "ew.e2.realm1.x", "", nil, &interest{}); err != nil {
		t.Fatalf("an interest change refused: %v", err)
	}
	b := q.take()
	if b == nil || len(b.items) != n+1 {
		t.Fatalf("took %v items, want %d", b, n+1)
	}
	q.done(b)
	q.mu.Lock()
	left := q.bytes
	q.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d bytes counted after the batch was sent, want 0", left)
	}

	// A burst of 100,000 items: its slice goes once sent.
	q = newOutq(1 << 30)
	for i := 0; i < 100_000; i++ {
		q.pushEnv(classRoute, "ew.n.b.m", "ew.n.a", []byte{1})
	}
	b = q.take()
	q.done(b)
	if cap(b.items) != 0 {
		t.Fatalf("a sent batch keeps room for %d items", cap(b.items))
	}
}

// A received message's headers are counted with it: the mesh sends none,
// but a message that has them holds them with its data, and was counted
// by its data alone (a megabyte of headers for 160 bytes of budget).
func TestInboundCountsHeaders(t *testing.T) {
	const max = 1 << 20
	q := newInq(newInbound(max), "")
	m := &nats.Msg{Subject: "ew.e2.realm1.t", Reply: nodeInbox("b"), Header: nats.Header{"X-Big": {string(make([]byte, 512<<10))}}}
	if c := msgCost(m); c < 512<<10 {
		t.Fatalf("a message with 512 KiB of headers costs %d bytes", c)
	}
	if d := q.push([]*nats.Msg{m, m}); d != 1 {
		t.Fatalf("two messages of 512 KiB of headers into a 768 KiB share: %d dropped, want 1", d)
	}
}
