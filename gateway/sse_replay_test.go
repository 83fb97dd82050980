package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestSSERetainedReplayReachesPromptReader: the retained events a stream
// asks for (?retained=true, or a reconnect's Last-Event-ID) on a prefix
// with more retained topics than sse_queue (256 frames) reach a client
// that reads them promptly, and the live events published after them
// follow in order. The router replays them in one turn of its event loop,
// faster than any client can be written to: before, the queue's 257th
// frame cut the stream as a slow reader before the handler had written
// one, and an EventSource reconnecting with Last-Event-ID (which asks for
// the retained events again) was cut again at every reconnect.
func TestSSERetainedReplayReachesPromptReader(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil) // sse_queue 256, sse_buffer 1 MiB
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub := e.dial("realm1", proto.JSON)
	const n = 1000
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, fmt.Sprintf("com.r.t%d", i), []any{i}, nil, &client.PublishOptions{Acknowledge: true, Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, hdr := range [][]string{nil, {"Last-Event-ID", "12345"}} {
		path := "/wamp/realm1/events/com.r.?match=prefix&retained=true"
		if hdr != nil {
			path = "/wamp/realm1/events/com.r.?match=prefix"
		}
		_, sse := e.stream(ctx, "GET", path, "", hdr...)
		for got := 0; got < n; got++ {
			ev, err := sse.next()
			if err != nil {
				t.Fatalf("%v: after %d retained events: %v", hdr, got, err)
			}
			if ev.event == "problem" || !strings.Contains(ev.data, `"retained":true`) {
				t.Fatalf("%v: a prompt reader got %q %s after %d of %d retained events", hdr, ev.event, ev.data, got, n)
			}
		}
		if err := pub.Publish(ctx, "com.r.live", []any{"live"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
		if ev, err := sse.next(); err != nil || !strings.Contains(ev.data, `"live"`) {
			t.Fatalf("%v: after the replay: %+v %v, want the live event", hdr, ev, err)
		}
	}
	cancel()
	waitFor(t, "the streams to end", func() bool { return e.gw.streams.Load() == 0 })
	waitFor(t, "the SSE total to return to 0", func() bool { return e.gw.sse.bytes.Load() == 0 })
}
