package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDrainNotHeldByStalledStreamClient: the drain writes an event
// stream's last event, its problem (system_shutdown), with a short
// deadline of its own, not the stream's write timeout. The client here
// takes the stream over HTTP/2 with a receive window of 14 bytes, which
// ": subscribed\n\n" fills, and reads nothing more: the problem's write
// cannot progress, as to a client whose socket buffers are full. Before,
// that write waited the whole write timeout (10 s by default; 20 s here)
// and held the gateway's Drain, and the stop, as long, where the stream
// used to end at once.
func TestDrainNotHeldByStalledStreamClient(t *testing.T) {
	e := stalledStream(t, false)
	time.Sleep(200 * time.Millisecond) // ": subscribed" sent, the window used up; not read
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	e.gw.Drain(ctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Drain took %v with a stream client that does not read (write timeout 20s)", d)
	}
}

// TestDrainNotHeldByStreamWriteInProgress: an event stream whose handler
// is blocked writing an event when the drain starts (its client reads
// nothing more: here an HTTP/2 window that ": subscribed\n\n" filled) has
// that write ended within drainEventTimeout, as the drain's own last
// event is. Before, the handler saw the drain only once the write had
// failed at the stream's write timeout (10 s by default; 20 s here),
// which held the gateway's Drain, and the stop, as long.
func TestDrainNotHeldByStreamWriteInProgress(t *testing.T) {
	e := stalledStream(t, true)
	time.Sleep(300 * time.Millisecond) // the event's write blocked on the window
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	e.gw.Drain(ctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Drain took %v with a stream handler blocked writing to a client that does not read (write timeout 20s)", d)
	}
}

// TestDrainCutNotCountedAsSlowReader: an event stream whose write the
// drain's deadline ends (endStreamWrites: its client reads nothing, here
// an HTTP/2 window that ": subscribed\n\n" filled) ends with the
// shutdown, not as a slow reader: edgewamp_gateway_sse_cut_total counts
// the clients that read more slowly than events arrived, and a stop is
// not one. Before, the handler took the write's deadline error for the
// stream's write timeout and counted the cut there.
func TestDrainCutNotCountedAsSlowReader(t *testing.T) {
	e := stalledStream(t, true)
	time.Sleep(300 * time.Millisecond) // the event's write blocked on the window
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.gw.Drain(ctx)
	waitFor(t, "the stream ended", func() bool { return e.gw.streams.Load() == 0 })
	if n := e.gw.metrics.sseCut.Load(); n != 0 {
		t.Fatalf("edgewamp_gateway_sse_cut_total = %d after a drain ended a stream's write in progress; want 0 (the stop is no slow reader)", n)
	}
}

// stalledStream opens an event stream of com.stall over HTTP/2 whose
// client's receive window ": subscribed\n\n" fills and which reads
// nothing more, with a 20 s write timeout; with publish, an event is
// published to it, whose write then blocks. The stream is closed at the
// test's end.
func stalledStream(t *testing.T, publish bool) *env {
	t.Helper()
	laneFree(t)
	e, hc := tlsEnv(t, func(o *Options) { o.Limits.WriteTimeout = 20 * time.Second })
	tr := hc.Transport.(*http.Transport)
	tr.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: len(": subscribed\n\n")}
	base := "https://" + e.gw.Addr().String()
	req, _ := http.NewRequest("GET", base+"/wamp/realm1/events/com.stall", nil)
	req.Header.Set("Accept", "text/event-stream")
	r, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Body.Close() })
	if r.StatusCode != http.StatusOK || r.ProtoMajor != 2 {
		t.Fatalf("GET events: %d over HTTP/%d, want 200 over HTTP/2", r.StatusCode, r.ProtoMajor)
	}
	if publish {
		p, err := hc.Post(base+"/wamp/realm1/publish/com.stall", "application/json", strings.NewReader(`{"args":["stuck"],"options":{"acknowledge":true}}`))
		if err != nil || p.StatusCode != http.StatusOK {
			t.Fatalf("publish: %v %v", p, err)
		}
		p.Body.Close()
	}
	return e
}
