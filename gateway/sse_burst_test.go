package gateway

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestSSEPublisherBurstReachesPromptReader: a publisher's burst of 2,000
// small events (one write of 60 KB, which the router delivers in one turn
// of its event loop, faster than any client is written to) reaches an
// event stream that reads promptly, in order. Before, the 257th frame
// found the stream's queue (sse_queue, 256 frames) full and cut it as a
// slow reader: any peer that may publish on a topic could so end all its
// HTTP subscribers, however promptly they read. A stream that does not
// read holds the burst's entries past sse_queue at 16 bytes each in the
// SSE total (overCost; the frames count once for all the streams that
// share them), and gives them back when it ends.
func TestSSEPublisherBurstReachesPromptReader(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil) // sse_queue 256, sse_buffer 1 MiB
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, sse := e.stream(ctx, "GET", "/wamp/realm1/events/com.burst", "")
	waitFor(t, "the stream", func() bool { return e.gw.streams.Load() == 1 })
	addr := strings.TrimSuffix(strings.TrimPrefix(e.wamp, "ws://"), "/ws")
	pub := dialRawJSON(t, addr)
	pub.send(proto.CodeHello, "realm1", map[string]any{"roles": map[string]any{"publisher": map[string]any{}}})
	if m := pub.recv(); m[0] != float64(proto.CodeWelcome) {
		t.Fatalf("got %v, want WELCOME", m)
	}
	const n = 2000
	var burst []byte
	for i := 0; i < n; i++ {
		b, _ := json.Marshal([]any{proto.CodePublish, i + 1, map[string]any{}, "com.burst", []any{i}})
		var h [4]byte
		binary.BigEndian.PutUint32(h[:], uint32(len(b)))
		burst = append(append(burst, h[:]...), b...)
	}
	if _, err := pub.c.Write(burst); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		ev, err := sse.next()
		if err != nil {
			t.Fatalf("after %d of %d events: %v", i, n, err)
		}
		if ev.event == "problem" || !strings.Contains(ev.data, fmt.Sprintf(`"args":[%d]`, i)) {
			t.Fatalf("a prompt reader got %q %s as event %d of the burst", ev.event, ev.data, i)
		}
	}
	if e.gw.metrics.sseCut.Load() != 0 {
		t.Fatalf("%d streams cut", e.gw.metrics.sseCut.Load())
	}
	// A stream that does not read (no handler drains it) holds such a
	// burst's entries past sse_queue at overCost each in the total, and
	// gives them back when it ends.
	before := e.gw.sse.bytes.Load()
	st := newStream(e.gw, 0)
	var frames int64
	for i := 0; i < n; i++ {
		f := &eventFrame{pub: uint64(i + 1), sse: make([]byte, 70)}
		st.push(f)
		frames += 70
	}
	if st.slow.Load() {
		t.Fatal("a burst of 2,000 events of 70 bytes (140 KB, under sse_buffer) cut the stream")
	}
	over := int64(n - cap(st.ch))
	if got, want := e.gw.sse.bytes.Load()-before, frames+overCost*over; got != want || int64(st.overN.Load()) != over {
		t.Fatalf("the total holds %d bytes for the stream, want %d (%d entries past sse_queue, %d counted)", got, want, over, st.overN.Load())
	}
	st.close()
	if got := e.gw.sse.bytes.Load(); got != before {
		t.Fatalf("the total holds %d bytes after the stream ended, want %d", got, before)
	}
	// Past sse_buffer, a stream that does not read is cut.
	st = newStream(e.gw, 0)
	defer st.close()
	for i := 0; i < 20000 && !st.slow.Load(); i++ {
		st.push(&eventFrame{pub: uint64(i + 1), sse: make([]byte, 70)})
	}
	if !st.slow.Load() || e.gw.sse.bytes.Load() != before {
		t.Fatalf("a stream past sse_buffer (1.4 MB of events queued): cut %v, %d bytes held", st.slow.Load(), e.gw.sse.bytes.Load()-before)
	}
}
