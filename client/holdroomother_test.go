package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A request of session B from session A's event handler (a bridge
// passing A's events on through B), while one of B's own handlers runs,
// is not a wait of B's dispatcher: B's reader need not read on for it,
// and B's event queue stays bounded by Config.MaxBacklog. Session told
// its dispatcher's waits by the dispatcher's frame in the stack, which
// every session's handlers have: B took A's handler's Call for its own
// handler's and bounded its queue by count only for as long as the Call
// waited.
func TestOtherSessionsHandlerKeepsByteBound(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	const limit, size, events = 1 << 20, 256 << 10, 32
	b, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.JSON, MaxBacklog: limit})
	noErr(t, "Dial B", err)
	t.Cleanup(func() { b.Close() })
	callee := dialRouter(t, url)
	invoked, answer := make(chan struct{}, 1), make(chan struct{})
	_, err = callee.Register(ctx, "com.example.slow", func(ctx context.Context, inv *Invocation) (*Result, error) {
		invoked <- struct{}{}
		select {
		case <-answer:
		case <-ctx.Done():
		}
		return &Result{}, nil
	}, nil)
	noErr(t, "Register", err)
	running, release := make(chan struct{}, 1), make(chan struct{})
	_, err = b.Subscribe(ctx, "com.example.big", func(*Event) {
		select {
		case running <- struct{}{}:
			<-release // B's handler runs while the rest come
		default:
		}
	}, nil)
	noErr(t, "Subscribe B", err)
	a := dialRouter(t, url)
	_, err = a.Subscribe(ctx, "com.example.trigger", func(*Event) {
		cctx, cancel := context.WithTimeout(ctx, 2*wait)
		defer cancel()
		b.Call(cctx, "com.example.slow", nil, nil, nil) // B's request from A's handler
	}, nil)
	noErr(t, "Subscribe A", err)
	defer close(answer)
	defer close(release)
	pub := dialRouter(t, url)
	big := strings.Repeat("x", size)
	noErr(t, "Publish", pub.Publish(ctx, "com.example.big", []any{big}, nil, &PublishOptions{Acknowledge: true}))
	<-running
	noErr(t, "Publish", pub.Publish(ctx, "com.example.trigger", nil, nil, &PublishOptions{Acknowledge: true}))
	<-invoked // B's Call from A's handler waits
	for range events {
		noErr(t, "Publish", pub.Publish(ctx, "com.example.big", []any{big}, nil, &PublishOptions{Acknowledge: true}))
	}
	for deadline := time.Now().Add(wait); !b.parked.Load(); time.Sleep(time.Millisecond) {
		if held := b.evBytes.Load(); held > 2*limit {
			t.Fatalf("B holds %.1f MiB of events behind its running handler, past its %d MiB MaxBacklog: A's handler's Call on B lifted B's byte bound", float64(held)/(1<<20), limit>>20)
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's reader neither waits for room nor queues past the bound (%.1f MiB held)", float64(b.evBytes.Load())/(1<<20))
		}
	}
	t.Logf("B holds %.2f MiB, its reader waiting for room", float64(b.evBytes.Load())/(1<<20))
	if held := b.evBytes.Load(); held > 2*limit {
		t.Fatalf("B holds %.1f MiB of events, past its %d MiB MaxBacklog", float64(held)/(1<<20), limit>>20)
	}
}
