package client

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Config.MaxInvocationBytes counted the running invocations' size as
// received, but their Handlers hold them decoded, which the decode
// budget lets reach DecodeRatio (16) times the size plus 64 KiB: callers
// of small MsgPack integers (16 times their size decoded) had a callee
// bounded to 1 MiB hold 3.2 MB in 100 Handlers; with the defaults up to
// 16,384 invocations of 4 KiB within 64 MiB held 1 GiB. An invocation
// counts what it holds decoded (or its size as received, when larger).
func TestMaxInvocationBytesCountsDecoded(t *testing.T) {
	const limit, ints, calls = 1 << 20, 2000, 100
	url := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	callee, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxInvocationBytes: limit})
	noErr(t, "Dial callee", err)
	t.Cleanup(func() { callee.Close() })
	release := make(chan struct{})
	var started atomic.Int32
	_, err = callee.Register(ctx, "com.example.ints", func(ctx context.Context, inv *Invocation) (*Result, error) {
		started.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &Result{}, nil
	}, nil)
	noErr(t, "Register", err)
	caller := dialRouter(t, url)
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
	var refused atomic.Int32
	errs := make(chan error, calls)
	for range calls {
		go func() {
			_, err := caller.Call(ctx, "com.example.ints", []any{payload}, nil, nil)
			if err != nil {
				refused.Add(1)
			}
			errs <- err
		}()
	}
	for deadline := time.Now().Add(wait); started.Load()+refused.Load() < calls; {
		if time.Now().After(deadline) {
			t.Fatalf("%d started and %d refused of %d calls", started.Load(), refused.Load(), calls)
		}
		time.Sleep(time.Millisecond)
	}
	n := int(started.Load())
	t.Logf("%d handlers started, each holding %d bytes decoded (%d encoded): %d of MaxInvocationBytes %d", n, decoded, len(raw.B), n*decoded, limit)
	close(release)
	for range calls {
		if err := <-errs; err != nil {
			wampErr(t, err, proto.URINoAvailableCallee)
		}
	}
	if n*decoded > limit+decoded {
		t.Fatalf("%d handlers hold %d bytes decoded, MaxInvocationBytes %d", n, n*decoded, limit)
	}
}
