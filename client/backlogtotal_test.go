package client

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Config.MaxBacklog bounds what is held, not what is received: a
// progressive call whose chunks and results total 8 times the bound, to
// a handler reading with Next and a caller whose Result runs beside its
// Sends (a window of 4 chunks: an unpaced stream meets the router's
// high_water first), completes, twice: the bytes taken are given back.
func TestBacklogBoundsHeldNotReceived(t *testing.T) {
	url := startRouter(t)
	const limit = 256 << 10
	cfg := Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxBacklog: limit}
	callee, err := Dial(context.Background(), cfg)
	noErr(t, "Dial callee", err)
	t.Cleanup(func() { callee.Close() })
	caller, err := Dial(context.Background(), cfg)
	noErr(t, "Dial caller", err)
	t.Cleanup(func() { caller.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	chunk := strings.Repeat("x", 16<<10)
	const n = 8 * limit / (16 << 10)
	_, err = callee.Register(ctx, "com.example.echo", func(ctx context.Context, inv *Invocation) (*Result, error) {
		got := 0
		for cur := inv; ; {
			got++
			if err := cur.SendProgress(cur.Args, nil); err != nil {
				return nil, err
			}
			var err error
			if cur, err = inv.Next(ctx); err == io.EOF {
				return &Result{Args: []any{got}}, nil
			} else if err != nil {
				return nil, err
			}
		}
	}, nil)
	noErr(t, "Register", err)

	var echoed atomic.Int64
	pc, err := caller.CallProgressive(ctx, "com.example.echo", &CallOptions{OnProgress: func(*Result) { echoed.Add(1) }})
	noErr(t, "CallProgressive", err)
	sendErr := make(chan error, 1)
	noErr(t, "Send first", pc.Send([]any{chunk}, nil, false))
	go func() {
		for i := 1; i < n; i++ {
			for echoed.Load() < int64(i-4) && ctx.Err() == nil {
				time.Sleep(100 * time.Microsecond)
			}
			if err := pc.Send([]any{chunk}, nil, i == n-1); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	res, err := pc.Result(ctx)
	noErr(t, "Result", err)
	noErr(t, "Send", <-sendErr)
	if len(res.Args) != 1 || res.Args[0] != int64(n) || echoed.Load() != n {
		t.Fatalf("result %v, %d progressive results; want [%d] and %d", res.Args, echoed.Load(), n, n)
	}
	// Nothing is left counted against the bound: a second stream as long
	// goes through too (a leak of the counters would fail it).
	echoed.Store(0)
	pc2, err := caller.CallProgressive(ctx, "com.example.echo", &CallOptions{OnProgress: func(*Result) { echoed.Add(1) }})
	noErr(t, "CallProgressive 2", err)
	noErr(t, "Send first", pc2.Send([]any{chunk}, nil, false))
	go func() {
		for i := 1; i < n; i++ {
			for echoed.Load() < int64(i-4) && ctx.Err() == nil {
				time.Sleep(100 * time.Microsecond)
			}
			if err := pc2.Send([]any{chunk}, nil, i == n-1); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	_, err = pc2.Result(ctx)
	noErr(t, "Result 2", err)
	noErr(t, "Send 2", <-sendErr)
}
