package edge

import "testing"

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
