package loop

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A connection that lingers (flush.go: linger) reads nothing more, so the
// partial message it was receiving when its session ended can never be
// finished: it goes back to max_inbound_total at once. Before, it stayed
// held and counted until the close (as long as the peer took 16 KiB every
// 2 s, minutes for a backlog of megabytes), and neither the stall check
// nor the shed closes a dying connection: a few lingering peers kept the
// budget full, and other clients' large messages were refused (1009).
// Here a WebSocket client sends the first 300 KiB fragment of a message,
// then its Close frame; a TLS RawSocket client 300 KiB of a 400 KiB
// frame, then close_notify; each with a 512 KiB result it does not read
// queued behind a 32 KiB router send buffer.
func TestLingerDropsPartialInput(t *testing.T) {
	t.Parallel()
	const result, partial = 512 << 10, 300 << 10
	cert := newTestCert(t)
	clk := newFakeClock() // the lingering connections are never judged
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Listeners = append(o.Listeners, Listener{Addr: "127.0.0.1:0", TLS: cert.server})
		o.Now = clk.Now
		o.MaxMessage = 1 << 20
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
	held := func() int64 { h, _, _ := s.e.Inbound(); return h }
	// lingers waits for the partial input to be counted, then has the
	// client end its session (end), then checks that the connection
	// lingers and that its partial input left the budget.
	lingers := func(t *testing.T, raw net.Conn, end func()) {
		t.Helper()
		eventually(t, ioTimeout, "the partial input counted", func() bool { return held() >= partial })
		end()
		eventually(t, ioTimeout, "the connection lingering", func() bool {
			st, ok := s.e.statOf(t, raw)
			return ok && st.phase == phDead
		})
		eventually(t, 3*time.Second, "the partial input released", func() bool { return held() == 0 })
		if !s.openAt(raw) {
			t.Fatal("closed: not lingering")
		}
	}
	t.Run("websocket_fragment_close", func(t *testing.T) {
		c := dialTCP(t, s.url, 16<<10)
		w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack}
		w.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
		w.expectUpgrade()
		shrinkRouterSendBuffer(t, c, 32<<10)
		p := newWAMP(t, w, proto.MsgPack)
		p.join()
		w.write(cliFrame(true, opBinary, p.callMsg(p.nextReq(), "com.blob", nil)))
		eventually(t, ioTimeout, "the result queued in gnet's buffer", func() bool {
			st, ok := s.e.statOf(t, c)
			return ok && st.backlog > result/2
		})
		w.write(cliFrame(false, opBinary, make([]byte, partial)))
		lingers(t, c, func() { w.write(cliFrame(true, opClose, []byte{0x03, 0xe8})) })
	})
	t.Run("tls_partial_frame_close_notify", func(t *testing.T) {
		raw := dialTCP(t, s.e.Addrs()[1].String(), 16<<10)
		tc := tls.Client(raw, cert.clientFor(tls.VersionTLS13))
		tc.SetDeadline(time.Now().Add(ioTimeout))
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		r := &rsClient{t: t, c: tc, br: newReader(tc), ser: proto.MsgPack, autoPong: true}
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
		frame := appendRawHeader(nil, rawMessage, 400<<10)
		r.write(append(frame, make([]byte, partial)...))
		lingers(t, raw, func() {
			if err := tc.CloseWrite(); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// A lingering connection never sends a pong that waits for its backlog
// to drain (sendWaitingPong answers only an open session's), so the pong
// is dropped when the connection starts to linger, and leaves
// max_outbound_total. Before, it stayed held and counted until the close:
// a RawSocket PING may carry up to max_message. Here a RawSocket client
// with a 512 KiB result unread sends a 200 KiB PING, whose pong waits,
// then GOODBYE.
func TestLingerDropsWaitingPong(t *testing.T) {
	t.Parallel()
	const result, ping = 512 << 10, 200 << 10
	clk := newFakeClock() // the lingering connection is never judged
	s := startServer(t, func(o *Options, _ *route.Config) { o.Now = clk.Now })
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
	r.write(appendRawFrame(nil, rawPing, make([]byte, ping)))
	eventually(t, ioTimeout, "the pong waiting", func() bool {
		st, ok := s.e.statOf(t, raw)
		return ok && st.pong == ping
	})
	r.send(p.goodbye())
	eventually(t, ioTimeout, "the connection lingering", func() bool {
		st, ok := s.e.statOf(t, raw)
		return ok && st.phase == phDead
	})
	eventually(t, 3*time.Second, "the waiting pong dropped", func() bool {
		st, ok := s.e.statOf(t, raw)
		return ok && st.pong == 0
	})
}
