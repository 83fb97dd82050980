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
