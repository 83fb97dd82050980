package client

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// dialBacklog dials a MessagePack session to url with Config.MaxBacklog
// limit, closed at the test's end; what names it in a failure.
func dialBacklog(t *testing.T, ctx context.Context, url string, limit int, what string) *Session {
	t.Helper()
	s, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxBacklog: limit})
	noErr(t, what, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// Config.MaxBacklog bounds what all of a session's streams hold, not
// each one's: four progressive invocations (calls) each holding 192 KiB
// of chunks (results) not taken, under a 256 KiB bound, hold at most the
// bound between them, and the streams past it end with ErrBacklog. Before,
// the bound was per invocation (per call): here the four held 768 KiB,
// and at MaxInvocations (16,384) of 16 MiB each a caller could make a
// callee hold 256 GiB.
func TestBacklogBoundsSessionNotStream(t *testing.T) {
	url := startRouter(t)
	const limit = 256 << 10
	const streams, chunks = 4, 3
	chunk := strings.Repeat("x", 64<<10)
	held := func(s *Session) (n int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, st := range s.invs {
			n += st.queued
		}
		for _, c := range s.calls {
			for _, r := range c.queue {
				n += r.size
			}
		}
		return n
	}

	// counted is the session's own count of what its streams hold (0
	// where it keeps none).
	counted := func(s *Session) int64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		if v := reflect.ValueOf(s).Elem().FieldByName("streamHeld"); v.IsValid() {
			return v.Int()
		}
		return 0
	}

	t.Run("invocations", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
		defer cancel()
		callee := dialBacklog(t, ctx, url, limit, "Dial callee")
		caller := dialRouter(t, url)
		causes := make(chan error, streams)
		_, err := callee.Register(ctx, "com.hold", func(ctx context.Context, inv *Invocation) (*Result, error) {
			<-ctx.Done() // never takes a chunk
			causes <- context.Cause(ctx)
			return nil, ctx.Err()
		}, nil)
		noErr(t, "Register", err)
		_, err = callee.Register(ctx, "com.fence", func(ctx context.Context, inv *Invocation) (*Result, error) {
			return &Result{}, nil
		}, nil)
		noErr(t, "Register fence", err)
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		var wg sync.WaitGroup
		for range streams {
			pc, err := caller.CallProgressive(cctx, "com.hold", &CallOptions{CancelMode: "killnowait"})
			noErr(t, "CallProgressive", err)
			noErr(t, "Send first", pc.Send([]any{"start"}, nil, false))
			for range chunks {
				pc.Send([]any{chunk}, nil, false) // ErrCallDone once the callee ended it
			}
			wg.Add(1)
			go func() { defer wg.Done(); pc.Result(cctx) }()
		}
		// The chunks reached the callee's reader before the fence's
		// INVOCATION (one connection each way, one router shard).
		_, err = caller.Call(ctx, "com.fence", nil, nil, nil)
		noErr(t, "fence", err)
		if n := held(callee); n > limit {
			t.Errorf("the callee holds %d KiB of chunks for %d invocations, want at most MaxBacklog (%d KiB) between them", n>>10, streams, limit>>10)
		}
		ended := 0
		for ; ended < streams; ended++ {
			select {
			case c := <-causes:
				if !errors.Is(c, ErrBacklog) {
					t.Fatalf("an invocation ended with %v before the caller gave up, want ErrBacklog", c)
				}
				continue
			case <-time.After(200 * time.Millisecond):
			}
			break
		}
		if ended == 0 {
			t.Error("no invocation ended with ErrBacklog")
		}
		ccancel()
		wg.Wait()
		deadline := time.Now().Add(wait)
		for held(callee) != 0 || counted(callee) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the callee still counts %d bytes held once every invocation ended", counted(callee))
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	t.Run("calls", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
		defer cancel()
		caller := dialBacklog(t, ctx, url, limit, "Dial caller")
		callee := dialRouter(t, url)
		var sent sync.WaitGroup
		sent.Add(streams)
		_, err := callee.Register(ctx, "com.stream", func(ctx context.Context, inv *Invocation) (*Result, error) {
			for range chunks {
				inv.SendProgress([]any{chunk}, nil)
			}
			sent.Done()
			<-ctx.Done()
			return nil, ctx.Err()
		}, nil)
		noErr(t, "Register", err)
		_, err = callee.Register(ctx, "com.fence", func(ctx context.Context, inv *Invocation) (*Result, error) {
			sent.Wait() // every stream's results are written before the fence's
			return &Result{}, nil
		}, nil)
		noErr(t, "Register fence", err)
		gate := make(chan struct{})
		errs := make(chan error, streams)
		for range streams {
			go func() {
				_, err := caller.Call(ctx, "com.stream", nil, nil, &CallOptions{CancelMode: "killnowait", OnProgress: func(*Result) { <-gate }})
				errs <- err
			}()
		}
		_, err = caller.Call(ctx, "com.fence", nil, nil, nil)
		noErr(t, "fence", err)
		if n := held(caller); n > limit {
			t.Errorf("the caller holds %d KiB of progressive results for %d calls, want at most MaxBacklog (%d KiB) between them", n>>10, streams, limit>>10)
		}
		close(gate)
		backlogged := 0
		for range streams {
			if err := <-errs; errors.Is(err, ErrBacklog) {
				backlogged++
			} else if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				// The others wait for their final result until ctx ends.
				t.Logf("a call: %v", err)
			}
			if backlogged > 0 {
				cancel() // the rest end now
			}
		}
		if backlogged == 0 {
			t.Error("no call failed with ErrBacklog")
		}
		deadline := time.Now().Add(wait)
		for counted(caller) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the caller still counts %d bytes held once every call ended", counted(caller))
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}
