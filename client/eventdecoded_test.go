package client

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The event queue's byte bound (Config.MaxBacklog) counted the events'
// encoded size, but what the queue holds is their decoded Go values,
// which the decode budget lets reach Config.DecodeRatio (16) times the
// size plus 64 KiB: behind a slow handler, small MsgPack events of small
// integers (about 24 times their size decoded) held ~20 × MaxBacklog. The
// queue counts each event's decoded size (the decode budget's estimate,
// its Details included; its encoded size when larger).
func TestEventQueueBoundedByDecodedBytes(t *testing.T) {
	url := startRouter(t)
	const limit, ints, events = 256 << 10, 2000, 160
	sub, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxBacklog: limit})
	noErr(t, "Dial subscriber", err)
	pub := dialRouter(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	var read atomic.Int64
	sub.OnMessage(func(m *proto.Message) {
		if m.Type == proto.CodeEvent {
			read.Add(1)
		}
	})
	release := make(chan struct{})
	_, err = sub.Subscribe(ctx, "com.example.ints", func(*Event) { <-release }, nil)
	noErr(t, "Subscribe", err)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
		sub.Close()
	})
	payload := make([]any, ints)
	for i := range payload {
		payload[i] = i % 100
	}
	raw, err := proto.EncodeValue(proto.MsgPack, []any{payload})
	noErr(t, "encode", err)
	budget := math.MaxInt
	_, err = proto.DecodeValueBudget(raw, &budget)
	noErr(t, "decode", err)
	decoded := math.MaxInt - budget
	t.Logf("an event's payload: %d bytes encoded, %d decoded", len(raw.B), decoded)
	for range events {
		noErr(t, "Publish", pub.Publish(ctx, "com.example.ints", []any{payload}, nil, nil))
	}
	_, err = pub.Call(ctx, "wamp.session.count", nil, nil, nil) // the publications are in
	noErr(t, "Call", err)
	// Either the reader took every event, or it waits for room.
	deadline := time.Now().Add(wait)
	for read.Load() < events && !sub.parked.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber read %d events and does not wait for room", read.Load())
		}
		time.Sleep(time.Millisecond)
	}
	// The queued events and the one being handled.
	held := (len(sub.evq) + 1) * decoded
	t.Logf("%d events queued or handled, %d bytes decoded (MaxBacklog %d)", len(sub.evq)+1, held, limit)
	if held > limit+decoded {
		t.Fatalf("the subscriber holds %d events queued, %d bytes decoded (MaxBacklog %d)", len(sub.evq)+1, held, limit)
	}
	close(release)
}
