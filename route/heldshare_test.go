package route

import (
	"runtime"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The live events a get_retained window holds are one copy of the
// publication however many of a loop's sessions hold it: each session
// holding its own copy let one PUBLISH of 1 MiB make the router hold a
// mebibyte per session with a window pending (one address's 1,024
// connections: a gibibyte), counted in no router-wide budget.
func TestHeldEventsShareOneCopy(t *testing.T) {
	for _, k := range []struct {
		name   string
		shards int
	}{{"same shard", 1}, {"other shard", 2}} {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, k.shards, nil)
			pub := e.connectOn(0, proto.JSON)
			pub.hello("realm1", allFeatures, nil)
			pub.id = pub.expect(proto.CodeWelcome).ID
			// A retained event whose delivery takes a session's walk burst
			// (one entry per 16 bytes): the next get_retained SUBSCRIBE
			// waits its turn, its window pending.
			fat := strings.Repeat("f", walkBurst*retainedBytesPerEntry)
			pub.publish("com.fat", map[string]any{"retain": true, "acknowledge": true}, []any{fat}, nil)
			pub.expect(proto.CodePublished)
			const n = 48
			subs := make([]*tc, 0, n)
			for range n {
				c := e.connectOn(k.shards-1, proto.JSON)
				c.hello("realm1", allFeatures, nil)
				c.id = c.expect(proto.CodeWelcome).ID
				c.peer.slow.Store(true) // refuses its events: nothing decoded
				c.subscribe("com.fat", map[string]any{"get_retained": true})
				c.subscribe("com.big", map[string]any{"get_retained": true})
				subs = append(subs, c)
			}
			e.sync()
			for _, c := range subs {
				var pending int
				c.exec.do(func() { pending = c.sess.winPending })
				if pending != 1 {
					t.Fatalf("session %d has %d windows pending, want 1", c.id, pending)
				}
			}
			big := strings.Repeat("x", maxWinHeld-4096)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			pub.publish("com.big", nil, []any{big}, nil)
			e.sync()
			runtime.GC()
			runtime.ReadMemStats(&after)
			var held int
			for _, c := range subs {
				c.exec.do(func() { held += c.sess.winHeldN })
			}
			if held != n {
				t.Fatalf("%d events held, want %d (one per session)", held, n)
			}
			grew := int64(after.HeapInuse) - int64(before.HeapInuse)
			t.Logf("one PUBLISH of %d bytes held by %d sessions: heap in use grew %.1f MiB", len(big), n, float64(grew)/(1<<20))
			if grew > 8*int64(len(big)) {
				t.Fatalf("one PUBLISH of %d KiB held by %d sessions grew the heap in use by %d KiB: a copy per session", len(big)>>10, n, grew>>10)
			}
			runtime.KeepAlive(big)
		})
	}
}
