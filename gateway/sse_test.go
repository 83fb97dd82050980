package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestSSELargeEventReachesPromptReader: one event larger than sse_buffer
// (1 MiB by default; a WAMP message may be up to 16 MiB) cut every event
// stream of its topic as a "slow reader", however promptly its client
// read: push refused a frame that did not fit the stream's byte bound even
// into an empty queue, where a streamed call's progressive results and a
// webhook's queue take one item larger than their bound. Any peer that
// may publish on a topic could so end all its HTTP subscribers at once
// (found by the gateway streams review, whose
// TestReviewSSELargeEventCutsPromptReader this is).
func TestSSELargeEventReachesPromptReader(t *testing.T) {
	e := newEnv(t, nil) // default limits: sse_buffer 1 MiB, sse_queue 256
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, sse := e.stream(ctx, "GET", "/wamp/realm1/events/com.big", "")
	if resp.StatusCode != 200 {
		t.Fatalf("events: %s", resp.Status)
	}
	waitFor(t, "the stream", func() bool { return e.gw.streams.Load() == 1 })
	wsub := e.dial("realm1", proto.JSON)
	got := make(chan int, 1)
	if _, err := wsub.Subscribe(ctx, "com.big", func(ev *client.Event) {
		if s, ok := ev.Args[0].(string); ok {
			got <- len(s)
		}
	}, nil); err != nil {
		t.Fatal(err)
	}
	pub := e.dial("realm1", proto.MsgPack)
	payload := strings.Repeat("z", 1200<<10) // 1.2 MiB: under max_message (16 MiB)
	if err := pub.Publish(ctx, "com.big", []any{payload}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n != len(payload) {
			t.Fatalf("WAMP subscriber got %d bytes", n)
		}
	case <-ctx.Done():
		t.Fatal("the WAMP subscriber got nothing")
	}
	ev, err := sse.next()
	if err != nil {
		t.Fatalf("the SSE stream ended without an event: %v", err)
	}
	if ev.event == "problem" {
		t.Fatalf("the prompt SSE reader was cut by one %d-byte event (sse_buffer %d): problem %s; cuts counted %d",
			len(payload), DefaultedLimits(Limits{}).SSEBuffer, ev.data, e.gw.metrics.sseCut.Load())
	}
	if !strings.Contains(ev.data, `"topic":"com.big"`) || len(ev.data) < len(payload) {
		t.Fatalf("event %.100s (%d bytes)", ev.data, len(ev.data))
	}
	if n := e.gw.metrics.sseCut.Load(); n != 0 {
		t.Fatalf("%d streams cut", n)
	}
}

// TestSSELargeRetainedEventReachesReconnects, the retained form of the
// above: a retained event larger than sse_buffer ended every stream that
// asked for the topic's retained event (?retained=true, or an EventSource
// reconnecting with Last-Event-ID, which forces it) before anything else:
// the EventSource reconnected, was replayed the event and was cut again,
// for as long as the event stayed retained (the review's
// TestReviewSSELargeRetainedEventCutsEveryReconnect).
func TestSSELargeRetainedEventReachesReconnects(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := e.dial("realm1", proto.MsgPack)
	payload := strings.Repeat("r", 1200<<10)
	if err := pub.Publish(ctx, "com.bigstate", []any{payload}, nil, &client.PublishOptions{Acknowledge: true, Retain: true}); err != nil {
		t.Fatal(err)
	}
	cut := 0
	for i := 0; i < 3; i++ {
		_, rd := e.stream(ctx, "GET", "/wamp/realm1/events/com.bigstate", "", "Last-Event-ID", "1")
		ev, err := rd.next()
		if err != nil {
			t.Fatalf("reconnect %d: %v", i, err)
		}
		if ev.event == "problem" && strings.Contains(ev.data, URISlowReader) {
			cut++
		} else if !strings.Contains(ev.data, `"retained":true`) {
			t.Fatalf("reconnect %d: %s %.100s", i, ev.event, ev.data)
		}
	}
	if cut > 0 {
		t.Fatalf("%d of 3 reconnects (Last-Event-ID) were cut as slow readers by the topic's %d-byte retained event before reading anything", cut, len(payload))
	}
}

// TestSSELargeEventsBoundedByTotal: with a frame larger than sse_buffer
// taken into an empty queue, a stream whose client does not read holds
// such a frame in a blocked write until write_timeout with nothing
// queued, where the SSE total's reaper, which looked at the queued bytes
// only, passed it by: a few streams, each on a topic of its own, held
// sse_buffer_total several times over. The frame a stream's handler is
// writing counts as held by it, so the reaper cuts the stuck streams and
// ends their writes.
func TestSSELargeEventsBoundedByTotal(t *testing.T) {
	const (
		streams = 2
		size    = 5 << 20 // more than the kernel's buffers take (tcp_wmem's 4 MiB at most)
		total   = 1 << 20
	)
	e := newEnv(t, func(o *Options) {
		o.Limits.SSEBuffer = 16 << 10
		o.Limits.SSEBufferTotal = total
		o.Limits.WriteTimeout = time.Minute // out of the way: the total must end the writes
	})
	nonReaders(t, e, streams, func(i int) string {
		return fmt.Sprintf("GET /wamp/realm1/events/com.huge.%d HTTP/1.1\r\nHost: localhost\r\n\r\n", i)
	})
	waitFor(t, "the subscriptions", func() bool { return subscribedSinks(e) == streams })
	// Published by an in-process session with JSON arguments: a 5 MiB
	// event transcoded from a client's MsgPack takes seconds under -race.
	ps, p := e.gw.pool.openPinned(identity{realm: "realm1", authid: "pub", authrole: "anonymous", method: "static"}, 0, nil, nil, nil)
	if p != nil {
		t.Fatalf("publisher: %+v", p)
	}
	args := []byte(`["` + strings.Repeat("h", size) + `"]`)
	for i := 0; i < streams; i++ {
		r := e.gw.runSync(ps, func() *syncReply {
			return ps.publish(&pubReq{uri: fmt.Sprintf("com.huge.%d", i), args: args, wamp: true})
		})
		if r.typ == proto.CodeError {
			t.Fatalf("publish: %s %s", r.err, r.detail)
		}
	}
	for deadline := time.Now().Add(15 * time.Second); e.gw.sse.cuts.Load() < streams || e.gw.sse.bytes.Load() > total; {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams not reading, one %d MiB event each: %d KiB held 15 s later (bound %d KiB), %d streams cut for the total, %d as slow readers",
				streams, size>>20, e.gw.sse.bytes.Load()>>10, total>>10, e.gw.sse.cuts.Load(), e.gw.metrics.sseCut.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStreamedCallLargeResultBoundedByTotal: a call streamed as SSE takes
// one progressive result larger than sse_buffer into its empty queue, as
// an event stream takes such an event, but its handler took the result
// out of the SSE total (and out of what call.held reports) as its write
// began: a client that does not read held it, uncounted, until
// write_timeout, where README says sse_buffer_total counts the frames
// being written (found by the review of the gateway's changes, whose
// TestReviewStreamedCallLargeResultBoundedByTotal this is). The final
// result, up to the router's message size too, was never counted. Calls
// whose clients do not read, two with one 5 MiB progressive result each,
// one with a 5 MiB final result, sse_buffer_total 1 MiB: each is cut for
// the total and its write ended, the invocations still running canceled.
func TestStreamedCallLargeResultBoundedByTotal(t *testing.T) {
	laneFree(t)
	const (
		progCalls = 2
		calls     = progCalls + 1 // and one answered with a large final result
		size      = 5 << 20       // more than the kernel's buffers take (tcp_wmem's 4 MiB at most)
		total     = 1 << 20
	)
	e := newEnv(t, func(o *Options) {
		o.Limits.SSEBuffer = 16 << 10
		o.Limits.SSEBufferTotal = total
		o.Limits.WriteTimeout = time.Minute // out of the way: the total must end the writes
	})
	callee := e.dial("realm1", proto.JSON)
	chunk := strings.Repeat("p", size)
	var sent, canceled atomic.Int64
	e.register(callee, "com.huge", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		if err := inv.SendProgress([]any{chunk}, nil); err != nil {
			return nil, err
		}
		sent.Add(1)
		select {
		case <-ctx.Done():
			canceled.Add(1)
			return nil, ctx.Err()
		case <-time.After(40 * time.Second):
		}
		return &client.Result{Args: []any{"done"}}, nil
	})
	e.register(callee, "com.huge.result", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		sent.Add(1)
		return &client.Result{Args: []any{chunk}}, nil
	})
	nonReaders(t, e, calls, func(i int) string {
		proc := "com.huge"
		if i == progCalls {
			proc = "com.huge.result"
		}
		return "POST /wamp/realm1/call/" + proc + " HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	})
	waitWithin(t, 20*time.Second, "the callee's results", func() bool { return sent.Load() == calls })
	// Cut within reapEvery and stuckAfter of the writes' blocking.
	for deadline := time.Now().Add(4 * time.Second); e.gw.sse.cuts.Load() < calls || e.gw.metrics.sseCut.Load() < calls || e.gw.sse.bytes.Load() > total || canceled.Load() < progCalls; {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls whose clients do not read, one %d MiB result each (%d progressive): 4 s later %d cut for the total (bound %d KiB; %d cut in all), the SSE total counts %d KiB, %d of %d callee invocations canceled",
				calls, size>>20, progCalls, e.gw.sse.cuts.Load(), total>>10, e.gw.metrics.sseCut.Load(), e.gw.sse.bytes.Load()>>10, canceled.Load(), progCalls)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
