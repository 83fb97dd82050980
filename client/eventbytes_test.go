package client

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The event queue was bounded by its count only (Config.EventQueue, 1024):
// a publisher of large events to a Go subscriber whose handler is slower
// had it hold up to 1024 of them (16 GiB at the router's 16 MiB
// max_message; 263 MiB for 63 events of 4 MiB measured), the router's
// high_water never applying since the reader takes them promptly. The
// queued events' bytes are held to Config.MaxBacklog too: past it the
// reader waits for room, as when the queue is full.
func TestEventQueueBoundedByBytes(t *testing.T) {
	url := startRouter(t)
	const limit, size, events = 1 << 20, 256 << 10, 16
	sub, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxBacklog: limit})
	noErr(t, "Dial subscriber", err)
	pub := dialRouter(t, url)
	ctx := context.Background()
	var read atomic.Int64
	sub.OnMessage(func(m *proto.Message) {
		if m.Type == proto.CodeEvent {
			read.Add(1)
		}
	})
	release := make(chan struct{})
	_, err = sub.Subscribe(ctx, "com.example.big", func(*Event) { <-release }, nil)
	noErr(t, "Subscribe", err)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
		sub.Close()
	})
	payload := strings.Repeat("x", size)
	for range events {
		noErr(t, "Publish", pub.Publish(ctx, "com.example.big", []any{payload}, nil, &PublishOptions{Acknowledge: true}))
	}
	// Either the reader took every event, or it waits for room.
	deadline := time.Now().Add(wait)
	for read.Load() < events && !sub.parked.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber read %d events and does not wait for room", read.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if held := len(sub.evq) * size; held > limit {
		t.Fatalf("the subscriber holds %d events of %d bytes queued (%d bytes, MaxBacklog %d)", len(sub.evq), size, held, limit)
	}
	close(release)
}
