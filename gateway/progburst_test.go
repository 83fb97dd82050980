package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestStreamedCallProgressBurstNotCut: a callee's burst of small
// progressive results, more than sse_queue of them (the router delivers
// a read's worth of YIELDs in one turn of its event loop, faster than
// any client is written to), reaches an HTTP caller that reads them
// promptly, as an event stream's burst of events does.
func TestStreamedCallProgressBurstNotCut(t *testing.T) {
	laneFree(t)
	const n = 2000
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.burst", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		for i := 1; i <= n; i++ {
			if err := inv.SendProgress([]any{i}, nil); err != nil {
				return nil, err
			}
		}
		return &client.Result{Args: []any{"done"}}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, sse := e.stream(ctx, "POST", "/wamp/realm1/call/com.burst", `{}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for i := 1; i <= n; i++ {
		ev, err := sse.next()
		if err != nil || ev.event != "progress" || ev.data != fmt.Sprintf(`{"args":[%d],"kwargs":{}}`, i) {
			t.Fatalf("a burst of %d progressive results (sse_queue %d) to a client reading them: event %d is %+v (%v)", n, DefaultedLimits(Limits{}).SSEQueue, i, ev, err)
		}
	}
	if ev, err := sse.next(); err != nil || ev.event != "result" {
		t.Fatalf("result: %+v (%v)", ev, err)
	}
	waitFor(t, "the SSE total back to zero", func() bool { return e.gw.sse.bytes.Load() == 0 })
}
