package loop

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A progressive RESULT ends its call half-way from high_water to
// hard_limit (5dea726), not at high_water: a burst of progressive results
// whose backlog lies between the two marks (384 KiB here, high_water 128
// KiB, the mark 576 KiB) is queued whole for a caller that reads only
// later, and the caller then gets every chunk and the final RESULT; a
// burst past the mark (768 KiB) ends the call alone (ERROR
// wamp.error.unavailable to the caller, INTERRUPT to the callee), the
// caller's session open. With the mark at high_water the first burst lost
// its call after ~128 KiB.
func TestSocketProgressiveBurstUnderTheMarkDelivered(t *testing.T) {
	t.Parallel()
	const chunk = 32 << 10
	const under, over = 12, 24 // 384 KiB and 768 KiB of chunks
	const mark = bpHighWater + (bpHardLimit-bpHighWater)/2
	if under*chunk <= bpHighWater+64<<10 || under*chunk >= mark-64<<10 || over*chunk <= mark+64<<10 {
		t.Fatal("the bursts do not straddle the mark")
	}
	s := backpressureServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	callee := s.dial("rs", proto.MsgPack)
	blob := make([]byte, chunk)
	var sent atomic.Int64
	ended := make(chan error, 1)
	release := make(chan struct{})
	burst := func(n int) client.Handler {
		return func(hctx context.Context, inv *client.Invocation) (*client.Result, error) {
			for range n {
				if hctx.Err() != nil {
					ended <- context.Cause(hctx)
					return nil, hctx.Err()
				}
				if err := inv.SendProgress([]any{blob}, nil); err != nil {
					return nil, err
				}
				sent.Add(1)
				time.Sleep(time.Millisecond) // let the router read it
			}
			// Wait (bounded) for the test to let the final RESULT go, or
			// to be told the call ended.
			select {
			case <-release:
			case <-hctx.Done():
				ended <- context.Cause(hctx)
				return nil, hctx.Err()
			case <-time.After(10 * time.Second):
			}
			return &client.Result{Args: []any{"done"}}, nil
		}
	}
	for name, n := range map[string]int{"com.burst.under": under, "com.burst.over": over} {
		if _, err := callee.Register(ctx, name, burst(n), nil); err != nil {
			t.Fatal(err)
		}
	}

	// The caller announces progressive results, calls, and reads nothing
	// until the burst is queued.
	c := dialTCP(t, s.url, 4096)
	w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack, autoPong: true}
	w.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
	w.expectUpgrade()
	shrinkRouterSendBuffer(t, c, 4096)
	p := newWAMP(t, w, proto.MsgPack)
	roles := map[string]any{"caller": map[string]any{"features": map[string]any{"progressive_call_results": true}}}
	w.send(encodeMsg(t, proto.MsgPack, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"),
		Dict: rawValue(t, proto.MsgPack, map[string]any{"roles": roles})}))
	p.expect(proto.CodeWelcome)
	sessions := s.r.SessionCount()
	progressive := rawValue(t, proto.MsgPack, map[string]any{"receive_progress": true})

	// Under the mark: every chunk queued, then the final RESULT.
	req := p.nextReq()
	w.send(encodeMsg(t, proto.MsgPack, &proto.Message{Type: proto.CodeCall, Request: req, Dict: progressive,
		URI: []byte("com.burst.under")}))
	var peak int
	eventually(t, 20*time.Second, "the burst queued for the caller", func() bool {
		select {
		case cause := <-ended:
			st, _ := s.e.statOf(t, c)
			t.Fatalf("the call ended (%v) after %d of %d chunks of %d KiB, the caller's backlog %d KiB: a burst under the mark (%d KiB) lost its call",
				cause, sent.Load(), under, chunk>>10, st.backlog>>10, mark>>10)
		default:
		}
		st, ok := s.e.statOf(t, c)
		peak = st.backlog
		return ok && sent.Load() == under && st.backlog > under*chunk-64<<10
	})
	t.Logf("the caller's backlog reached %d KiB (high_water %d KiB, the mark %d KiB)", peak>>10, bpHighWater>>10, mark>>10)
	release <- struct{}{}
	for progress := 0; ; {
		m := p.next()
		if m.Request != req {
			t.Fatalf("unexpected %v for request %d", m.Type, m.Request)
		}
		if m.Type == proto.CodeError {
			t.Fatalf("the burst under the mark ended with ERROR %s after %d progressive results", m.URI, progress)
		}
		if m.Type != proto.CodeResult {
			t.Fatalf("got %v for the burst", m.Type)
		}
		if !resultIsProgress(t, m) {
			if progress != under {
				t.Fatalf("the final RESULT after %d progressive results, want %d", progress, under)
			}
			break
		}
		progress++
	}

	// Past the mark: the call ends, the session stays.
	sent.Store(0)
	req = p.nextReq()
	w.send(encodeMsg(t, proto.MsgPack, &proto.Message{Type: proto.CodeCall, Request: req, Dict: progressive,
		URI: []byte("com.burst.over")}))
	var cause error
	select {
	case cause = <-ended:
	case <-ctx.Done():
		t.Fatal("a burst past the mark never ended its call")
	}
	t.Logf("past the mark the callee sent %d of %d chunks; its context ended with %v", sent.Load(), over, cause)
	if !errors.Is(cause, client.ErrInterrupted) {
		t.Fatalf("the callee's context ended with %v, want an INTERRUPT", cause)
	}
	if int(sent.Load())*chunk < mark-64<<10 {
		t.Fatalf("the call ended after %d KiB of chunks, before the mark (%d KiB)", int(sent.Load())*chunk>>10, mark>>10)
	}
	for {
		m := p.next()
		if m.Request != req {
			t.Fatalf("unexpected %v for request %d", m.Type, m.Request)
		}
		if m.Type == proto.CodeError {
			if string(m.URI) != proto.URIUnavailable {
				t.Fatalf("the stream ended with %s, want %s", m.URI, proto.URIUnavailable)
			}
			break
		}
		if m.Type != proto.CodeResult || !resultIsProgress(t, m) {
			t.Fatalf("got %v (a final result?) for a burst past the mark", m.Type)
		}
	}
	if !s.openAt(c) || s.r.SessionCount() != sessions {
		t.Fatalf("the caller's session was closed (%d sessions, were %d)", s.r.SessionCount(), sessions)
	}
}

// resultIsProgress reports whether RESULT m has Details.progress true.
func resultIsProgress(t *testing.T, m *proto.Message) bool {
	t.Helper()
	v, err := proto.DecodeValue(m.Dict)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := v.(map[string]any)
	p, _ := d["progress"].(bool)
	return p
}
