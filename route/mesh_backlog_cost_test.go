package route

import (
	"runtime"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// heapInUse returns the heap in use after two collections.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// Events from another node waiting for a shard that does not keep up
// count in its bound (maxMeshBacklog) what they hold there, as events
// from another shard of the node do (publication.cost): the decoded
// black/white lists, and the publication, its carry and its task, not
// the envelope's bytes alone. An exclude list of 8,193 small ids is 16 KB
// of envelope and a 256 KiB set once read, and an empty event's 40-byte
// envelope holds about 600 bytes: the 32 MiB bound let a stalled loop
// hold 290 MiB of such lists, or 510 MiB of empty events (measured over
// two edge nodes, not counted here).
func TestMeshEventBacklogCountsWhatEventsHold(t *testing.T) {
	mm, es := newMemMesh(t, 1, 1, nil)
	sub := es[0].join(proto.JSON)
	sub.subscribe("com.t", nil)
	mm.sync()
	r := es[0].r
	unblock := stallExec(t, es[0], 0)
	sh := r.Shard(0)

	// Events with a long exclude list.
	lists := &publication{topic: []byte("com.t"), c: &carry{args: proto.Raw{Ser: proto.JSON, B: []byte(`["l"]`)}}, filter: &pubFilter{}}
	for id := uint64(1); id <= 8193; id++ {
		lists.filter.exclude.add(id)
	}
	const withLists = 16
	envs := make([][]byte, withLists)
	for i := range envs {
		lists.id = uint64(i + 1)
		envs[i] = appendEvent(nil, "realm1", lists)
	}
	h0, c0 := heapInUse(), sh.meshBacklog.Load()
	for _, env := range envs {
		r.MeshDeliver(99, env)
	}
	envs = nil
	held, counted := heapInUse()-h0, sh.meshBacklog.Load()-c0
	t.Logf("%d events with 8,193-id exclude lists: %d KiB held, %d KiB counted", withLists, held>>10, counted>>10)
	if counted < held*3/4 {
		t.Errorf("%d events with 8,193-id exclude lists hold %d KiB waiting for the shard, counted %d KiB", withLists, held>>10, counted>>10)
	}

	// Empty events.
	const empty = 20000
	envs = make([][]byte, empty)
	for i := range envs {
		p := &publication{id: uint64(1000 + i), topic: []byte("com.t"), c: &carry{}}
		envs[i] = appendEvent(nil, "realm1", p)
	}
	h0, c0 = heapInUse(), sh.meshBacklog.Load()
	for _, env := range envs {
		r.MeshDeliver(99, env)
	}
	envs = nil
	held, counted = heapInUse()-h0, sh.meshBacklog.Load()-c0
	t.Logf("%d empty events: %d KiB held, %d KiB counted", empty, held>>10, counted>>10)
	if counted < held*3/4 {
		t.Errorf("%d empty events hold %d KiB waiting for the shard, counted %d KiB", empty, held>>10, counted>>10)
	}
	if n := r.MeshStats().EventsOverflow.Load(); n != 0 {
		t.Fatalf("%d events dropped below the bound", n)
	}

	unblock()
	for i := 0; i < withLists+empty; i++ {
		if m := sub.recv(); m.Type != proto.CodeEvent {
			t.Fatalf("got %v, want EVENT %d of %d", m.Type, i+1, withLists+empty)
		}
	}
	mm.sync()
	if b := sh.meshBacklog.Load(); b != 0 {
		t.Fatalf("%d bytes still counted after the shard ran", b)
	}
}
