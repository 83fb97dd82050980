package route

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A retained event keeps its PUBLISH black/white lists (they still apply
// to later subscribers), so they count against MaxRetainedBytes like its
// payload. Before, only the topic and payload were counted: an anonymous
// publisher retaining events with an empty payload and a large
// exclude_authid list made the router hold ~56 bytes per distinct entry
// per topic outside the budget (20 events of 1M entries each, 5 MiB
// PUBLISHes, took a loops:1 router from 21 MB to 1.5 GB of RSS while
// retainedBytes read 6 KB).
func TestRetainedFilterCountsInBudget(t *testing.T) {
	const budget = 1 << 20
	e := newEnv(t, 1, func(c *Config) { c.MaxRetainedBytes = budget })
	pub := e.join(proto.MsgPack)
	ids := make([]any, 20000)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const topics = 40
	for i := range topics {
		pub.publish("com.state.t"+strconv.Itoa(i), map[string]any{"retain": true, "exclude_authid": ids}, nil, nil)
		e.sync()
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	rm := e.r.Realm("realm1")
	rm.mu.RLock()
	n, bytes := len(rm.retained), rm.retainedBytes
	var filters int64
	for _, re := range rm.retained {
		if f := re.pub.filter; f != nil {
			filters += f.size()
		}
	}
	rm.mu.RUnlock()
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d topics retained, %d bytes accounted, filters %d bytes, heap grew %d bytes", n, bytes, filters, grown)
	if bytes > budget || filters > budget {
		t.Fatalf("retained %d topics accounted as %d bytes, but their black/white lists alone hold %d bytes (budget %d)", n, bytes, filters, budget)
	}
	if grown > 4*budget {
		t.Fatalf("heap grew %d bytes holding %d retained events with a %d-byte budget", grown, n, budget)
	}
	var refused uint64
	e.execs[0].do(func() { refused = e.r.Shard(0).stats.RetainRefused.Load() })
	if refused == 0 {
		t.Fatalf("no retained event refused")
	}
	// A retained event whose lists fit is kept and still filters.
	pub.publish("com.state.small", map[string]any{"retain": true, "exclude_authid": []any{"nobody"}}, []any{1}, nil)
	e.sync()
	late := e.join(proto.JSON)
	late.subscribe("com.state.small", map[string]any{"get_retained": true})
	if ev := late.expect(proto.CodeEvent); argsOf(ev)[0] != 1.0 && argsOf(ev)[0] != int64(1) && argsOf(ev)[0] != uint64(1) {
		t.Fatalf("retained %s", describe(ev))
	}
}
