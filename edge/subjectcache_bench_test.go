package edge

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// The event loops publishing to a few topics each, all at once: the
// subject cache's read path.
func BenchmarkSubjectCacheHot(b *testing.B) {
	var c subjectCache
	topics := make([][]byte, 64)
	for i := range topics {
		topics[i] = []byte(fmt.Sprintf("com.example.device.%d.telemetry", i))
	}
	var g atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := int(g.Add(7))
		for pb.Next() {
			k++
			c.get(eventRoot(2), "realm1", topics[k&63])
		}
	})
}

// The same, with one publication in eight to a topic never seen before
// (a client cycling through topics).
func BenchmarkSubjectCacheCycling(b *testing.B) {
	var c subjectCache
	topics := make([][]byte, 64)
	for i := range topics {
		topics[i] = []byte(fmt.Sprintf("com.example.device.%d.telemetry", i))
	}
	fresh := make([][]byte, 1<<16)
	for i := range fresh {
		fresh[i] = []byte(fmt.Sprintf("com.cycle.%d", i))
	}
	var g, f atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := int(g.Add(7))
		for pb.Next() {
			k++
			if k&7 == 0 {
				c.get(eventRoot(2), "realm1", fresh[f.Add(1)&(1<<16-1)])
				continue
			}
			c.get(eventRoot(2), "realm1", topics[k&63])
		}
	})
}
