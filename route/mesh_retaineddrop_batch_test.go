package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A PUBLISH refused its retained place for a bound drops the topic's
// earlier retained event, and the other nodes are asked to drop their
// copies of it (meshDropRetained). Each such PUBLISH sent its own query,
// each making every other node scan all of the realm's retained events
// under the realm's lock on its shard 0: a publisher at its share taking
// turns with another on one topic made one scan per PUBLISH pair on every
// other node. Now at most one query is sent per dropRetainedDelay and
// realm, the first at once, the ids due meanwhile gathered into the next.
func TestMeshRetainedDropsBatched(t *testing.T) {
	defer func(d time.Duration) { dropRetainedDelay = d }(dropRetainedDelay)
	dropRetainedDelay = time.Hour // flushed by hand below
	mm, es := newMemMesh(t, 2, 1, func(c *Config) { c.MaxRetainedPerPublisher = 1 })
	a, b := es[0], es[1]
	p1, p2 := a.joinFrom("192.0.2.1:1000"), a.joinFrom("192.0.2.2:1000")
	p2.retainAck("com.p2.own", 0) // p2's share full
	sub := b.join(proto.JSON)
	sub.subscribe("com.t", nil) // b's interest: it gets (and keeps) p1's events
	mm.sync()
	q0 := mm.nodes[0].queries.Load()
	const pairs = 200
	for i := range pairs {
		p1.retainAck("com.t", i)
		p2.retainAck("com.t", i) // refused its place: p1's event dropped
	}
	mm.sync()
	if n := mm.nodes[0].queries.Load() - q0; n > 1 {
		t.Fatalf("%d PUBLISH pairs that each dropped a retained event made %d drop queries to the other node (each a scan of its retained events), want one (the first at once, the others gathered into the next)", pairs, n)
	}
	// Sent, b drops its copy: the topic has no retained event anywhere.
	sh := a.r.shards[0]
	if err := sh.Do(func() { sh.flushRetainedDrops(a.r.Realm("realm1")) }); err != nil {
		t.Fatal(err)
	}
	kept := func() bool {
		rm := b.r.Realm("realm1")
		rm.mu.RLock()
		defer rm.mu.RUnlock()
		return rm.retained["com.t"] != nil
	}
	for deadline := time.Now().Add(5 * time.Second); kept(); {
		if time.Now().After(deadline) {
			t.Fatal("b still keeps a copy of com.t's retained event its publisher's node dropped")
		}
		time.Sleep(5 * time.Millisecond)
		mm.sync()
	}
}
