package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A chain re-linked for another node's event that arrives out of order
// (retainNewer) keeps this node's own events in their publishers'
// shares: the re-link dropped the chain (unretain, which takes each
// event out of its share) before reading each event's share to retain
// it again, so a local publisher's event stayed retained counted in no
// share, and its publisher could retain another past
// max_retained_per_publisher.
func TestMeshRetainedRelinkKeepsLocalShare(t *testing.T) {
	_, envs := newMemMesh(t, 1, 1, func(c *Config) { c.MaxRetainedPerPublisher = 1 })
	e := envs[0]
	rm := e.r.Realm("realm1")
	x := e.joinFrom("192.0.2.7:40001")
	// X's filtered retained event on com.t: its share's one event.
	x.publish("com.t", map[string]any{"retain": true, "acknowledge": true, "exclude_authid": []any{"nobody"}}, []any{"x"}, nil)
	x.expect(proto.CodePublished)
	e.sync()
	const owner = "address 192.0.2.7"
	share := func() int {
		rm.mu.RLock()
		defer rm.mu.RUnlock()
		if sh := rm.retainedBy[owner]; sh != nil {
			return sh.events
		}
		return 0
	}
	if n := share(); n != 1 {
		t.Fatalf("X's share before: %d events, want 1", n)
	}
	rm.mu.RLock()
	at := rm.retained["com.t"].pub.at
	rm.mu.RUnlock()
	// Another node's unrestricted event, published before X's, arrives
	// now: it belongs behind X's in the chain (re-linked).
	raw, _ := proto.EncodeValue(proto.JSON, []any{"remote"})
	p := &publication{id: 99, topic: []byte("com.t"), c: &carry{args: raw}, retained: true, at: at - 1, src: 7, seq: 1}
	e.r.meshEvent(appendEvent(nil, "realm1", p))
	var ids []uint64
	rm.mu.RLock()
	for re := rm.retained["com.t"]; re != nil; re = re.older {
		ids = append(ids, re.pub.id)
	}
	rm.mu.RUnlock()
	if len(ids) != 2 || ids[1] != 99 {
		t.Fatalf("chain %v, want X's event and 99", ids)
	}
	checkShares(t, rm, "after the re-link")
	if n := share(); n != 1 {
		t.Errorf("X's share after the re-link: %d events, want 1", n)
	}
	// X is at its share: another topic's retained event is refused.
	x.retainAck("com.u", "x")
	e.sync()
	rm.mu.RLock()
	_, kept := rm.retained["com.u"]
	rm.mu.RUnlock()
	if kept {
		t.Errorf("X retained com.u past its share of 1")
	}
}
