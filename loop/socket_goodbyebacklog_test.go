package loop

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A session that ends while the router still holds its output in gnet's
// buffer (here a RawSocket caller says GOODBYE, or a WebSocket caller
// sends its Close frame, before reading the 512 KiB result it asked for,
// its router socket's send buffer 32 KiB; or a TLS caller sends its
// close_notify) gets that output, the router's GOODBYE or Close frame and,
// over TLS, close_notify, then EOF.
// gnet's close wrote its buffer only as far as the socket took it at that
// moment and dropped the rest: the caller read part of the RESULT, then
// EOF (over TLS, no close_notify: a truncation). A peer that stops reading
// meanwhile is reset once it takes less than lingerProgress in a
// lingerStep.
func TestSessionEndBehindBacklogDelivered(t *testing.T) {
	t.Parallel()
	const result = 512 << 10
	cert := newTestCert(t)
	clk := newFakeClock()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Listeners = append(o.Listeners, Listener{Addr: "127.0.0.1:0", TLS: cert.server})
		o.Now = clk.Now
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s.registerBlob(ctx, t, result)
	// queued dials a caller (over TLS with useTLS) and has it call for the
	// blob; it returns once the result waits in gnet's buffer, with the
	// caller and its raw socket.
	queued := func(t *testing.T, useTLS bool) (*wamp, *rsClient, net.Conn) {
		addr := s.url
		if useTLS {
			addr = s.e.Addrs()[1].String()
		}
		raw := dialTCP(t, addr, 16<<10)
		var c net.Conn = raw
		if useTLS {
			tc := tls.Client(raw, cert.clientFor(tls.VersionTLS13))
			tc.SetDeadline(time.Now().Add(ioTimeout))
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			c = tc
		}
		r := &rsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack, autoPong: true}
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
		return p, r, raw
	}
	// leaving is queued, then the caller says GOODBYE; it returns once the
	// session has ended.
	leaving := func(t *testing.T, useTLS bool) (*wamp, *rsClient, net.Conn) {
		p, r, raw := queued(t, useTLS)
		r.send(p.goodbye())
		eventually(t, ioTimeout, "the session ended", func() bool {
			st, ok := s.e.statOf(t, raw)
			return !ok || st.phase == phDead
		})
		return p, r, raw
	}
	for _, useTLS := range []bool{false, true} {
		name := "rawsocket"
		if useTLS {
			name = "rawsocket_tls"
		}
		t.Run(name, func(t *testing.T) {
			p, r, raw := leaving(t, useTLS)
			if m := p.next(); m.Type != proto.CodeResult || len(args(t, m)) != 1 {
				t.Fatalf("got %v, want the RESULT", m.Type)
			}
			if m := p.next(); m.Type != proto.CodeGoodbye {
				t.Fatalf("got %v, want GOODBYE", m.Type)
			}
			s.tick(clk, time.Second) // the scan closes it once gnet has written everything
			r.c.SetReadDeadline(time.Now().Add(ioTimeout))
			if n, err := io.Copy(io.Discard, r.br); n != 0 || err != nil {
				// Over TLS, io.EOF after close_notify is nil here; a
				// truncation is an error.
				t.Fatalf("after GOODBYE: %d bytes, %v; want EOF", n, err)
			}
			eventually(t, ioTimeout, "the close", func() bool { return !s.openAt(raw) })
		})
	}
	// A WebSocket caller that starts the closing handshake before reading
	// its result: the result, then the router's Close frame; its session
	// leaves at once, before the output is written.
	t.Run("websocket_close", func(t *testing.T) {
		base := s.r.SessionCount()
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
		w.write(cliFrame(true, opClose, []byte{0x03, 0xe8}))
		eventually(t, ioTimeout, "the session gone", func() bool { return s.r.SessionCount() == base })
		if m := p.next(); m.Type != proto.CodeResult {
			t.Fatalf("got %v, want the RESULT", m.Type)
		}
		if op, _, err := w.readFrame(ioTimeout); err != nil || op != opClose {
			t.Fatalf("after the RESULT: opcode %x, %v; want the router's Close frame", op, err)
		}
		s.tick(clk, time.Second)
		eventually(t, ioTimeout, "the close", func() bool { return !s.openAt(c) })
	})
	// A TLS caller that sends close_notify (closing its write side) before
	// reading its result: the result, then the router's close_notify.
	t.Run("tls_close_notify", func(t *testing.T) {
		p, r, raw := queued(t, true)
		tc := r.c.(*tls.Conn)
		if err := tc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		eventually(t, ioTimeout, "the close_notify read", func() bool {
			st, ok := s.e.statOf(t, raw)
			return !ok || st.phase == phDead
		})
		if m := p.next(); m.Type != proto.CodeResult {
			t.Fatalf("got %v, want the RESULT", m.Type)
		}
		tc.SetReadDeadline(time.Now().Add(ioTimeout))
		if n, err := io.Copy(io.Discard, r.br); n != 0 || err != nil {
			t.Fatalf("after the RESULT: %d bytes, %v; want the router's close_notify", n, err)
		}
		s.tick(clk, time.Second)
		eventually(t, ioTimeout, "the close", func() bool { return !s.openAt(raw) })
	})
	t.Run("stops_reading", func(t *testing.T) {
		resets := s.e.Stats().LingerResets
		_, _, raw := leaving(t, false)
		s.tick(clk, time.Second)
		if !s.openAt(raw) {
			t.Fatal("closed while gnet still held its output")
		}
		if st := s.e.Stats(); st.Lingering != 1 || st.LingerResets != resets {
			t.Fatalf("lingering %d, resets %d (%d before); want 1 and none yet", st.Lingering, st.LingerResets, resets)
		}
		// Each judgement may find that the kernel took 16 KiB more (what
		// the peer's receive buffer and the router's send buffer absorb
		// once the result waits, bounded, if the loop wrote it late under
		// load): the linger is extended a step at most a few times.
		eventually(t, ioTimeout, "the close", func() bool {
			s.tick(clk, lingerStep+time.Second)
			return !s.openAt(raw)
		})
		if st := s.e.Stats(); st.Lingering != 0 || st.LingerResets != resets+1 {
			t.Fatalf("after the reset: lingering %d, resets %d (%d before); want 0 and one more", st.Lingering, st.LingerResets, resets)
		}
		raw.SetReadDeadline(time.Now().Add(ioTimeout))
		_, err := io.Copy(io.Discard, raw)
		if !errors.Is(err, io.EOF) && !isClosedErr(err) && err != nil && !errors.Is(err, net.ErrClosed) {
			t.Logf("read after the reset: %v", err)
		}
	})
}
