package route

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// An event from another node waiting for a shard holds the list of the
// subscriptions its topic matched, looked up for it alone (matchAll, on
// the mesh's inbound goroutine; events from another shard share the
// shard's cached look-up): 8 bytes a subscription, up to the realm's
// 4,096 wildcard patterns and the topic's prefixes. It was counted in a
// fixed 512 bytes: with 1,023 wildcard subscriptions matching a topic of
// 10 components, a small event held about 8 KiB and counted 0.6 KiB, so
// the 32 MiB bound let a loop that did not keep up hold ~14 times that.
func TestMeshEventBacklogCountsMatchedSubscriptions(t *testing.T) {
	mm, es := newMemMesh(t, 1, 1, nil)
	sub := es[0].join(proto.JSON)
	comps := strings.Split("a.b.c.d.e.f.g.h.i.j", ".")
	n := 0
	for mask := 1; mask < 1<<len(comps); mask++ { // every pattern with an empty component
		pat := make([]string, len(comps))
		for i, c := range comps {
			if mask&(1<<i) == 0 {
				pat[i] = c
			}
		}
		sub.subscribe(strings.Join(pat, "."), map[string]any{"match": "wildcard"})
		n++
	}
	mm.sync()
	r := es[0].r
	unblock := stallExec(t, es[0], 0)
	sh := r.Shard(0)

	const events = 256
	envs := make([][]byte, events)
	for i := range envs {
		p := &publication{id: uint64(i + 1), topic: []byte(strings.Join(comps, ".")), c: &carry{}}
		envs[i] = appendEvent(nil, "realm1", p)
	}
	h0, c0 := heapInUse(), sh.meshBacklog.Load()
	for _, env := range envs {
		r.MeshDeliver(99, env)
	}
	envs = nil
	held, counted := heapInUse()-h0, sh.meshBacklog.Load()-c0
	t.Logf("%d events matching %d subscriptions: %d KiB held, %d KiB counted", events, n, held>>10, counted>>10)
	if counted < held*3/4 {
		t.Errorf("%d events matching %d subscriptions hold %d KiB waiting for the shard, counted %d KiB", events, n, held>>10, counted>>10)
	}
	if d := r.MeshStats().EventsOverflow.Load(); d != 0 {
		t.Fatalf("%d events dropped below the bound", d)
	}
	sub.peer.slow.Store(true) // the events are dropped at the subscriber: only the backlog's count matters here
	unblock()
	for deadline := time.Now().Add(20 * time.Second); sh.meshBacklog.Load() != 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	mm.sync()
	if b := sh.meshBacklog.Load(); b != 0 {
		t.Fatalf("%d bytes still counted after the shard ran", b)
	}
}
