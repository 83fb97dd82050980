package client

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Client.Close, called while the Client backs off after losing its
// session, waits for the handlers the lost session still runs (an
// invocation Handler finishing after its context was canceled, an event
// handler), as Session.Close and a Close of a live session do: before,
// it returned at once, and they went on running after it, on whatever
// the application released once Close had returned.
func TestClientCloseWaitsForLostSessionsHandlers(t *testing.T) {
	a, stopA := startStoppableRouter(t)
	cl, err := Connect(context.Background(), Config{URL: a, Realm: "realm1", DialTimeout: time.Second},
		ReconnectConfig{MinBackoff: 2 * time.Second, MaxBackoff: 4 * time.Second})
	noErr(t, "Connect", err)
	invIn, evIn := make(chan struct{}), make(chan struct{})
	var invDone, evDone atomic.Bool
	const work = 400 * time.Millisecond
	noErr(t, "Register", cl.Register(context.Background(), "p.slow", func(ctx context.Context, inv *Invocation) (*Result, error) {
		close(invIn)
		<-ctx.Done()
		time.Sleep(work) // cleaning up after the cancel
		invDone.Store(true)
		return nil, ctx.Err()
	}, nil))
	noErr(t, "Subscribe", cl.Subscribe(context.Background(), "t.slow", func(*Event) {
		close(evIn)
		time.Sleep(2 * work)
		evDone.Store(true)
	}, nil))
	other := dialRouter(t, a)
	go other.Call(context.Background(), "p.slow", nil, nil, nil)
	noErr(t, "Publish", other.Publish(context.Background(), "t.slow", nil, nil, nil))
	for _, in := range []chan struct{}{invIn, evIn} {
		select {
		case <-in:
		case <-time.After(5 * time.Second):
			t.Fatal("handlers not started")
		}
	}
	stopA()
	// Lost: the Client backs off (2 s) before it dials the stopped router.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	for {
		if _, err := cl.Session(ctx); err != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	start := time.Now()
	noErr(t, "Close", cl.Close())
	took := time.Since(start)
	if !invDone.Load() || !evDone.Load() {
		t.Fatalf("Client.Close returned after %v while the lost session's handlers still ran (invocation handler done: %v, event handler done: %v)",
			took.Round(time.Millisecond), invDone.Load(), evDone.Load())
	}
	if took > 5*time.Second {
		t.Fatalf("Client.Close took %v", took)
	}
}
