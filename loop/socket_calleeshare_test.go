package loop

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// One caller flooding a callee that stopped reading no longer takes the
// callee's whole queue: the connection tells the dealer its backlog
// (conn.Backlog), and past half its high-water mark the dealer refuses the
// calls of a caller holding more than its share of the callee's
// invocations (route's calleeshare.go), so that another caller's call
// still reaches it. Caller A pipelines 64 calls of 16 KiB over a
// WebSocket to a RawSocket callee that does not read (HighWater 128 KiB);
// once 50 of them are refused, caller B calls, and the callee, reading
// again, answers B.
func TestSocketCalleeShare(t *testing.T) {
	t.Parallel()
	s := backpressureServer(t)
	h := newHealthy(s)

	c, r, cp := rawCallee(t, s, true)
	shrinkRouterSendBuffer(t, c, 4096)

	a := dialWS(t, s.url, proto.MsgPack)
	ap := newWAMP(t, a, proto.MsgPack)
	ap.join()
	payload := make([]byte, bpMsg)
	const calls = 64
	go func() {
		for i := uint64(1); i <= calls; i++ {
			a.c.SetWriteDeadline(time.Now().Add(ioTimeout))
			if _, err := a.c.Write(cliFrame(true, opBinary, ap.callMsg(i, "com.slow", []any{payload}))); err != nil {
				return
			}
		}
	}()
	refused, shared := 0, 0
	for refused < 50 {
		m := ap.expect(proto.CodeError)
		if m.URI == nil || string(m.URI) != proto.URIUnavailable {
			t.Fatalf("caller A got ERROR %s, want %s", m.URI, proto.URIUnavailable)
		}
		if l := args(t, m); len(l) == 1 && l[0] == "the callee is not reading fast enough and this caller holds more than its share of its invocations in flight" {
			shared++
		}
		refused++
	}

	b := s.dial("ws", proto.MsgPack)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		_, err := b.Call(ctx, "com.slow", []any{"b"}, nil, nil)
		res <- err
	}()
	select {
	case err := <-res:
		t.Fatalf("caller B's call ended before the callee read anything (%d of A's calls refused, %d for its share): %v", refused, shared, err)
	case <-time.After(300 * time.Millisecond):
	}
	// The callee reads again: B's INVOCATION is among what was queued.
	for {
		m := cp.expect(proto.CodeInvocation)
		if l := args(t, m); len(l) == 1 && l[0] == "b" {
			r.send(encodeMsg(t, proto.MsgPack, &proto.Message{Type: proto.CodeYield, Request: m.Request, Dict: emptyDict(t, proto.MsgPack)}))
			break
		}
	}
	if err := <-res; err != nil {
		t.Fatalf("caller B's call: %v", err)
	}
	var counted uint64
	for i := range s.r.Shards() {
		counted += s.r.Shard(i).Stats().CallsShare.Load()
	}
	t.Logf("%d of A's calls refused (read), %d for its share; %d counted", refused, shared, counted)
	if shared == 0 || counted == 0 {
		t.Fatal("no call of A refused for its share")
	}
	h.check()
}
