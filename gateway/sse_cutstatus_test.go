package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestStreamedCallCutAsSlowReaderIs503: a streamed call whose client reads
// its progressive results more slowly than its callee sends them is cut,
// its last event a problem edgewamp.error.slow_reader with status 503, as
// an event stream's cut says, whatever gateway.application_error_status
// is: the gateway's own refusal, not the callee's (application) error.
func TestStreamedCallCutAsSlowReaderIs503(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		// Bounded in bytes: a burst of more results than sse_queue is
		// taken (TestStreamedCallProgressBurstNotCut), one past
		// sse_buffer cuts.
		o.Limits.SSEQueue = 1
		o.Limits.SSEBuffer = 8 << 10
		o.ApplicationErrorStatus = 500
	})
	callee := e.dial("realm1", proto.JSON)
	chunk := strings.Repeat("p", 1<<10)
	e.register(callee, "com.burst", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		for i := 0; i < 2000 && ctx.Err() == nil; i++ {
			if inv.SendProgress([]any{chunk}, nil) != nil {
				break
			}
		}
		return &client.Result{Args: []any{"done"}}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, sse := e.stream(ctx, "POST", "/wamp/realm1/call/com.burst", `{}`)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// Cut before its first event was written (the callee's burst
		// filled the queue before the handler's first turn, a loaded
		// machine): answered as its plain request, the status held
		// until then being the problem's (fe5c120).
		var p problemDoc
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatalf("status %d %s: %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
		}
		if resp.StatusCode != 503 || p.Error != URISlowReader || p.Status != 503 {
			t.Fatalf("a streamed call cut as a slow reader before its first event is %d %s %d, want 503 %s", resp.StatusCode, p.Error, p.Status, URISlowReader)
		}
		return
	}
	for {
		ev, err := sse.next()
		if err != nil {
			t.Fatalf("the stream ended without its last event: %v", err)
		}
		switch ev.event {
		case "progress":
			continue
		case "result":
			t.Skip("the client kept up with 2,000 progressive results: nothing cut")
		case "problem":
			var p problemDoc
			if err := json.Unmarshal([]byte(ev.data), &p); err != nil {
				t.Fatal(err)
			}
			if p.Error != URISlowReader || p.Status != 503 || p.Title != "Service Unavailable" {
				t.Fatalf("a streamed call cut as a slow reader ends with %s %d %q, want %s 503: %s", p.Error, p.Status, p.Title, URISlowReader, ev.data)
			}
			return
		default:
			t.Fatalf("event %q: %s", ev.event, ev.data)
		}
	}
}
