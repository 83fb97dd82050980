package route

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The bytes a retained event counts in limits.retained_bytes are about
// what it holds: an event of a one-byte payload held 543 bytes of heap
// and was counted 269 (with an eligible list of one id, 887 and 277), so
// the realm's bound let its retained events hold two to three times it.
func TestRetainedCountsWhatItHolds(t *testing.T) {
	for _, lists := range []bool{false, true} {
		t.Run(fmt.Sprintf("lists=%v", lists), func(t *testing.T) {
			e := newEnv(t, 1, func(c *Config) { c.MaxRetainedPerPublisher = -1 })
			pub := e.join(proto.JSON)
			const n = 12000
			opts := map[string]any{"retain": true}
			if lists {
				opts["eligible"] = []uint64{1}
			}
			b := pub.opts(opts)
			args := raw(t, proto.JSON, []any{1})
			msgs := make([][]byte, 0, n)
			for i := range n {
				m := &proto.Message{Type: proto.CodePublish, Request: pub.nextReq(), Dict: b, URI: []byte(fmt.Sprintf("c.t%07d", i)), Args: args}
				r, err := pub.enc.Append(nil, pub.peer.ser, m)
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, r)
			}
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			pub.exec.do(func() {
				for _, r := range msgs {
					pub.sh.Receive(pub.sess, r)
				}
			})
			msgs = nil
			runtime.GC()
			runtime.ReadMemStats(&m1)
			rm := e.r.Realm("realm1")
			rm.mu.RLock()
			counted, kept := rm.retainedBytes, len(rm.retained)
			rm.mu.RUnlock()
			if kept != n {
				t.Fatalf("%d retained, want %d", kept, n)
			}
			held := (int64(m1.HeapInuse) - int64(m0.HeapInuse)) / n
			t.Logf("%d bytes of heap per retained event, counted %d", held, counted/n)
			if held > counted/n*5/4 {
				t.Fatalf("a retained event holds %d bytes of heap and is counted %d in retained_bytes", held, counted/n)
			}
		})
	}
}
