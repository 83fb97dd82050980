package client

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The progressive results a call holds for its OnProgress were counted
// towards Config.MaxBacklog by their size as received, but held decoded:
// a callee streaming small MsgPack integers (16 times their size decoded)
// to a caller whose OnProgress is slower had it hold 16 times the bound
// before the call was canceled. A result counts what it holds decoded (or
// its size as received, when larger).
func TestProgressiveResultsBacklogCountsDecoded(t *testing.T) {
	const limit, ints, results = 256 << 10, 2000, 200
	url := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	callee := dialRouter(t, url)
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
	_, err = callee.Register(ctx, "com.example.stream", func(ctx context.Context, inv *Invocation) (*Result, error) {
		for range results {
			if err := inv.SendProgress([]any{payload}, nil); err != nil {
				return nil, err
			}
		}
		return &Result{}, nil
	}, nil)
	noErr(t, "Register", err)
	caller, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxBacklog: limit})
	noErr(t, "Dial caller", err)
	t.Cleanup(func() { caller.Close() })
	// Progressive RESULTs that came while the call was pending: all but
	// the one being given to OnProgress were held for it.
	var pending atomic.Int32
	caller.OnMessage(func(m *proto.Message) {
		if m.Type != proto.CodeResult || !m.Opt.Bool(proto.KeyProgress, false) {
			return
		}
		caller.mu.Lock()
		_, ok := caller.calls[m.Request]
		caller.mu.Unlock()
		if ok {
			pending.Add(1)
		}
	})
	var once atomic.Bool
	_, err = caller.Call(ctx, "com.example.stream", nil, nil, &CallOptions{OnProgress: func(*Result) {
		if !once.CompareAndSwap(false, true) {
			return
		}
		// The first holds OnProgress until the reader has failed the
		// call (no call pending any more).
		for ctx.Err() == nil {
			caller.mu.Lock()
			n := len(caller.calls)
			caller.mu.Unlock()
			if n == 0 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}})
	if !errors.Is(err, ErrBacklog) {
		t.Fatalf("the call: %v, want ErrBacklog", err)
	}
	// Those counted past the bound include the one that crossed it.
	held := (int(pending.Load()) - 2) * decoded
	t.Logf("%d progressive results came while the call was pending: %d bytes decoded held (MaxBacklog %d)", pending.Load(), held, limit)
	if held > limit+decoded {
		t.Fatalf("the caller held %d bytes decoded of progressive results, MaxBacklog %d", held, limit)
	}
}
