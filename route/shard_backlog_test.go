package route

import (
	"strings"
	"sync"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// joinOn joins realm1 on shard i.
func (e *env) joinOn(i int, ser proto.Serializer) *tc {
	c := e.connectOn(i, ser)
	c.hello("realm1", allFeatures, nil)
	c.id = c.expect(proto.CodeWelcome).ID
	return c
}

// A publisher's shard hands each publication to the shards of its
// subscribers in one task, and does little more per publication than
// that; the subscribers' shard encodes and writes for each of them. So a
// shard that does not keep up (its loop busy, here stalled) used to queue
// every publication of a faster shard without bound. Events wait for it
// up to maxEventBacklog bytes; beyond, they are dropped for its
// subscribers and counted, as for a slow subscriber. What was queued is
// delivered once the shard runs again.
func TestShardEventBacklogBounded(t *testing.T) {
	e := newEnv(t, 2, nil)
	sub := e.joinOn(1, proto.JSON)
	sub.subscribe("com.flood", nil)
	pub := e.joinOn(0, proto.JSON)
	release := make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before the harness's cleanup, which waits for the executor
	e.execs[1].Execute(func() { <-release })

	const size = 256 << 10
	arg := strings.Repeat("x", size)
	const sent = 3 * maxEventBacklog / size
	for i := 0; i < sent; i++ {
		pub.publish("com.flood", nil, []any{arg}, nil)
	}
	e.execs[0].do(func() {}) // the publications have run
	dropped := int(e.r.Stats().EventsDroppedShardBacklog)
	queued := sent - dropped
	if b := e.r.Shard(1).eventBacklog.Load(); b > maxEventBacklog {
		t.Fatalf("%d bytes of events queued for the stalled shard, bound %d", b, maxEventBacklog)
	}
	if dropped == 0 || queued < maxEventBacklog/(size+1024)-1 {
		t.Fatalf("%d of %d events dropped: want the bound (%d bytes) filled, the rest dropped", dropped, sent, maxEventBacklog)
	}
	unblock()
	for i := 0; i < queued; i++ {
		if m := sub.recv(); m.Type != proto.CodeEvent {
			t.Fatalf("got %v, want EVENT %d of %d", m.Type, i+1, queued)
		}
	}
	e.sync()
	sub.quiet()
	if b := e.r.Shard(1).eventBacklog.Load(); b != 0 {
		t.Fatalf("%d bytes still counted after the shard ran", b)
	}
	// Room again: the next event is delivered.
	pub.publish("com.flood", nil, []any{"after"}, nil)
	if m := sub.recv(); m.Type != proto.CodeEvent {
		t.Fatalf("got %v after the backlog drained, want EVENT", m.Type)
	}
	if n := e.r.Stats().EventsDroppedShardBacklog; int(n) != dropped {
		t.Fatalf("%d more dropped after the backlog drained", int(n)-dropped)
	}
}
