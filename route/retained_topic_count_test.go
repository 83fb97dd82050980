package route

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A retained event's topic counts in limits.retained_bytes as often as it
// is held. The realm's map of retained events keys it by the topic, a
// string of its own, and the event kept held another copy of it: an event
// with a 4 KiB topic (proto.MaxURILen) and a one-byte payload held about
// 8,800 to 9,900 bytes of heap and was counted 4,636, so one publisher's events
// on long topics held twice the bound (its share, and the realm's). A
// testament's retained copy is made the same way (ownRetained).
func TestRetainedLongTopicCountsWhatItHolds(t *testing.T) {
	pad := strings.Repeat("a", proto.MaxURILen-16)
	topic := func(i int) string { return fmt.Sprintf("c.%s%07d", pad, i) }
	e := newEnv(t, 1, func(c *Config) {
		c.MaxRetainedPerPublisher, c.MaxRetainedBytesPerPublisher, c.MaxRetainedBytes = -1, -1, 1<<30
	})
	pub := e.join(proto.JSON)
	const n = 4000
	b := pub.opts(map[string]any{"retain": true})
	args := raw(t, proto.JSON, []any{1})
	msgs := make([][]byte, 0, n)
	for i := range n {
		m := &proto.Message{Type: proto.CodePublish, Request: pub.nextReq(), Dict: b, URI: []byte(topic(i)), Args: args}
		r, err := pub.enc.Append(nil, pub.peer.ser, m)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, r)
	}
	pub.exec.do(func() {
		for _, r := range msgs {
			pub.sh.Receive(pub.sess, r)
		}
	})
	checkRetainedHeld(t, e, n)
}

// retainedHeld returns what the n retained events of e's realm1 hold,
// the heap freed once the realm lets them go (what else the publications
// left, the loop's lookup cache of their topics, say, stays), and what
// they are counted for, per event.
func retainedHeld(t *testing.T, e *env, n int) (held, counted int64) {
	t.Helper()
	rm := e.r.Realm("realm1")
	rm.mu.RLock()
	counted, kept := rm.retainedBytes, len(rm.retained)
	rm.mu.RUnlock()
	if kept != n {
		t.Fatalf("%d retained, want %d", kept, n)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	rm.mu.Lock()
	for topic, re := range rm.retained {
		rm.unretain(topic, re)
	}
	rm.mu.Unlock()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	// The objects' bytes (HeapAlloc), not the spans' (HeapInuse): a span
	// is given back only when all its objects are, and the events share
	// theirs with what stays (the loop's lookup cache), so HeapInuse read
	// 8,800 to 12,158 a run (over 11,800 each under -race, which fails).
	return (int64(m0.HeapAlloc) - int64(m1.HeapAlloc)) / int64(n), counted / int64(n)
}

// checkRetainedHeld fails t when the n retained events of e's realm1
// hold more than a quarter past what they are counted for.
func checkRetainedHeld(t *testing.T, e *env, n int) {
	t.Helper()
	held, counted := retainedHeld(t, e, n)
	t.Logf("%d bytes of heap per retained event on a %d-byte topic, counted %d", held, proto.MaxURILen, counted)
	if held > counted*5/4 {
		t.Fatalf("a retained event on a %d-byte topic holds %d bytes of heap and is counted %d in retained_bytes", proto.MaxURILen, held, counted)
	}
}
