package loop

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A session that the router's shutdown ends (GOODBYE
// wamp.close.system_shutdown, its reply not come within GoodbyeTimeout)
// while its output waits behind its socket lingers (flush.go: linger),
// and Shutdown waits for it, within its context, before it stops the
// loops: the client reads its RESULT, the GOODBYE, then EOF.
func TestShutdownWaitsForLingering(t *testing.T) {
	t.Parallel()
	const result = 512 << 10
	clk := newFakeClock() // the lingering connection is never judged
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.Now = clk.Now
		rc.GoodbyeTimeout = 100 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	callee := s.dial("rs", proto.MsgPack)
	blob := make([]byte, result)
	if _, err := callee.Register(ctx, "com.blob", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{blob}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	raw := dialTCP(t, s.url, 16<<10)
	r := &rsClient{t: t, c: raw, br: newReader(raw), ser: proto.MsgPack}
	r.write(rsHandshake(proto.MsgPack, 15))
	r.expectHandshake()
	shrinkRouterSendBuffer(t, raw, 32<<10)
	p := newWAMP(t, r, proto.MsgPack)
	p.join()
	r.send(p.callMsg(p.nextReq(), "com.blob", nil))
	eventually(t, ioTimeout, "the result queued in gnet's buffer", func() bool {
		st, ok := s.e.statOf(t, raw)
		return ok && st.backlog > result/2
	})
	callee.Close()
	stopped := make(chan error, 1)
	go func() {
		sctx, scancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer scancel()
		stopped <- s.e.Shutdown(sctx)
	}()
	// Without the wait the loops stop (and gnet's close cuts the output)
	// as soon as the session has left; give it time to.
	select {
	case <-s.e.Done():
	case <-time.After(2 * time.Second):
	}
	if m := p.next(); m.Type != proto.CodeResult || len(args(t, m)) != 1 {
		t.Fatalf("got %v, want the RESULT", m.Type)
	}
	if m := p.next(); m.Type != proto.CodeGoodbye {
		t.Fatalf("got %v, want GOODBYE", m.Type)
	}
	raw.SetReadDeadline(time.Now().Add(ioTimeout))
	if n, err := io.Copy(io.Discard, r.br); n != 0 || err != nil {
		t.Fatalf("after GOODBYE: %d bytes, %v; want EOF", n, err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
