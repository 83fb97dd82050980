package client

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/edgewamp/edgewamp/proto"
)

// decodedSize is what DecodeValueBudget charges for v's MsgPack form.
func decodedSize(t *testing.T, v any) int {
	t.Helper()
	raw, err := proto.EncodeValue(proto.MsgPack, v)
	noErr(t, "encode", err)
	budget := math.MaxInt
	_, err = proto.DecodeValueBudget(raw, &budget)
	noErr(t, "decode", err)
	return math.MaxInt - budget
}

// The byte bounds counted a queued event as its decoded values (or its
// size as received), not the Event that holds them (88 bytes on 64-bit
// platforms, 96 allocated): tiny events behind a slow handler held
// several times Config.MaxBacklog. Each now counts its struct too.
func TestEventQueueCountsEventStructs(t *testing.T) {
	url := startRouter(t)
	const limit, events = 64 << 10, 3000
	sub, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxBacklog: limit, EventQueue: 1 << 16})
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
	_, err = sub.Subscribe(ctx, "com.example.tiny", func(*Event) { <-release }, nil)
	noErr(t, "Subscribe", err)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
		sub.Close()
	})
	for range events {
		noErr(t, "Publish", pub.Publish(ctx, "com.example.tiny", []any{1}, nil, nil))
	}
	_, err = pub.Call(ctx, "wamp.session.count", nil, nil, nil) // the publications are in
	noErr(t, "Call", err)
	deadline := time.Now().Add(wait)
	for read.Load() < events && !sub.parked.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber read %d events and does not wait for room", read.Load())
		}
		time.Sleep(time.Millisecond)
	}
	per := decodedSize(t, []any{1}) + int(unsafe.Sizeof(Event{}))
	held := (len(sub.evq) + 1) * per
	t.Logf("%d events queued or handled, %d bytes each held (MaxBacklog %d)", len(sub.evq)+1, per, limit)
	if held > limit+per {
		t.Fatalf("the subscriber holds %d events, %d bytes with their Events (MaxBacklog %d)", len(sub.evq)+1, held, limit)
	}
	close(release)
}

// Likewise a progressive invocation's chunks held for Next: each is an
// Invocation (128 bytes) besides its values and Details. The stream ends
// at the bound (wamp.error.payload_size_exceeded) counting them.
func TestHeldChunksCountInvocationStructs(t *testing.T) {
	url := startRouter(t)
	const limit = 64 << 10
	callee, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxBacklog: limit})
	noErr(t, "Dial callee", err)
	t.Cleanup(func() { callee.Close() })
	caller := dialRouter(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 4*wait)
	defer cancel()
	_, err = callee.Register(ctx, "com.example.slow", func(ctx context.Context, inv *Invocation) (*Result, error) {
		<-ctx.Done() // a handler that does not read the stream
		return nil, ctx.Err()
	}, nil)
	noErr(t, "Register", err)
	pc, err := caller.CallProgressive(ctx, "com.example.slow", nil)
	noErr(t, "CallProgressive", err)
	sent, maxHeld, maxCounted := 0, 0, 0
	for sent < 4*limit/64 {
		if err := pc.Send([]any{1}, nil, false); err != nil {
			if !errors.Is(err, ErrCallDone) {
				t.Fatalf("Send: %v", err)
			}
			break
		}
		sent++
		deadline := time.Now().Add(wait)
		ended := false
		for {
			invs, n, b := queuedChunks(callee)
			if n > maxHeld {
				maxHeld, maxCounted = n, b
			}
			if invs == 1 && n == sent-1 {
				break
			}
			if invs == 0 && sent > 1 {
				ended = true
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("chunk %d did not reach the callee", sent)
			}
			time.Sleep(100 * time.Microsecond)
		}
		if ended {
			break
		}
	}
	per := decodedSize(t, []any{1}) + decodedSize(t, map[string]any{"progress": true}) + int(unsafe.Sizeof(Invocation{}))
	t.Logf("at most %d chunks held, counted %d bytes; at least %d bytes each held (MaxBacklog %d)", maxHeld, maxCounted, per, limit)
	if maxHeld*per > limit+per {
		t.Fatalf("the callee held %d tiny chunks, counted %d bytes, at least %d with their Invocations (MaxBacklog %d)", maxHeld, maxCounted, maxHeld*per, limit)
	}
	rctx, rcancel := context.WithTimeout(ctx, wait)
	defer rcancel()
	_, err = pc.Result(rctx)
	wampErr(t, err, proto.URIPayloadSizeExceeded)
}
