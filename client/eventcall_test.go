package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// An event handler that calls on its own session while large events
// arrive: past Config.MaxBacklog the reader waited for room, the call's
// RESULT unread, and the handler with it, until its context ended (three
// events of 6 MiB under the default 16 MiB stalled the first handler's
// Call for its whole 3 s context). While a handler waits for a reply of
// its session the queue is bounded by its count only, as before the
// byte bound.
func TestEventHandlerCallPastByteBound(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	const limit = 1 << 20
	sub, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxBacklog: limit})
	noErr(t, "Dial subscriber", err)
	t.Cleanup(func() { sub.Close() })
	other := dialRouter(t, url)
	_, err = other.Register(ctx, "com.example.lookup", func(ctx context.Context, inv *Invocation) (*Result, error) {
		return &Result{Args: []any{1}}, nil
	}, nil)
	noErr(t, "Register", err)
	const events = 4
	results := make(chan error, events)
	_, err = sub.Subscribe(ctx, "com.example.big", func(ev *Event) {
		cctx, cancel := context.WithTimeout(ctx, 2*wait)
		defer cancel()
		_, err := sub.Call(cctx, "com.example.lookup", nil, nil, nil)
		results <- err
	}, nil)
	noErr(t, "Subscribe", err)
	pub := dialRouter(t, url)
	big := strings.Repeat("x", 600<<10) // two of them pass the bound
	for range events {
		noErr(t, "Publish", pub.Publish(ctx, "com.example.big", []any{big}, nil, &PublishOptions{Acknowledge: true}))
	}
	for i := range events {
		select {
		case err := <-results:
			noErr(t, "the handler's Call", err)
		case <-time.After(wait):
			t.Fatalf("the handler's Call of event %d did not answer (the reader waits for room by bytes)", i+1)
		}
	}
	if n := sub.dispatcherWaits.Load(); n != 0 {
		t.Fatalf("%d dispatcher waits still counted", n)
	}
}
