package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A realm's queue of meta events that never empties holds the events
// waiting, not every event it ever held. Appends grow its array from its
// length, and the events already published stayed in it (cleared, but
// counted) until the queue emptied: shards pushing events as fast as one
// publishes them (a storm of joins, leaves or registrations with meta
// subscribers) grew it without bound while few waited. Measured here:
// 200 turns of 1,032 events pushed for 1,024 published, 1,600 waiting in
// an array of 219,238 (about 80 bytes each: 17 MB).
func TestMetaQueueKeepsOnlyWhatWaits(t *testing.T) {
	e := newEnv(t, 2, nil)
	e.join(proto.JSON)
	rm := e.r.Realm("realm1")
	const rounds, extra = 200, 8
	var waiting, held int
	e.execs[0].do(func() {
		for range rounds {
			for i := range metaTurn + extra {
				rm.metaPush(metaItem{topic: metaSessionOnJoin, sess: uint64(i + 1), args: []any{}})
			}
			e.r.Shard(0).metaFlush(rm) // one turn: metaTurn of them
		}
		rm.meta.mu.Lock()
		waiting, held = len(rm.meta.q)-rm.meta.head, cap(rm.meta.q)
		rm.meta.mu.Unlock()
	})
	if waiting != rounds*extra {
		t.Fatalf("%d events waiting, want %d", waiting, rounds*extra)
	}
	// Twice what may be left after a turn (the array doubles), plus a
	// turn's pushes and what the queue keeps anyway.
	if max := 2 * (waiting + metaTurn + extra + metaKeepQueue); held > max {
		t.Fatalf("the queue's array holds %d events for %d waiting (%d pushed in all), want at most %d", held, waiting, rounds*(metaTurn+extra), max)
	}
	// The rest is published in order once the pushes stop.
	e.sync()
	e.execs[0].do(func() {
		rm.meta.mu.Lock()
		waiting = len(rm.meta.q) - rm.meta.head
		rm.meta.mu.Unlock()
	})
	if waiting != 0 {
		t.Fatalf("%d events still waiting after the shards went idle", waiting)
	}
}
