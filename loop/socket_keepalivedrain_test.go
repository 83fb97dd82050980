package loop

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A peer whose keepalive ping waits behind output it is still reading (a
// large result over a slow link, a caller that sends nothing meanwhile)
// is not closed as dead at the ping timeout: it has taken output since
// the ping, so it is alive, and its pong comes once it reaches the ping.
// Before, it was closed (keepalive_timeout, with a reset) PingTimeout
// after the ping whatever it took meanwhile: a 4 MiB result (within
// hard_limit) read at 50 KiB/s by a caller silent for the 30 s interval
// was cut 40 s in, twice as long as the read needs. A peer that takes
// nothing is still closed then (TestSocketKeepalive).
func TestKeepaliveSparesPeerReadingBacklog(t *testing.T) {
	t.Parallel()
	s, clk := keepaliveServer(t, 0)
	const blob = 1 << 20
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	s.registerBlob(ctx, t, blob) // its client package answers pings

	c := dialTCP(t, s.url, 16<<10)
	w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack}
	w.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
	w.expectUpgrade()
	p := newWAMP(t, w, proto.MsgPack)
	p.join()
	shrinkRouterSendBuffer(t, c, 16<<10)
	p.c.send(p.callMsg(p.nextReq(), "com.blob", nil))
	eventually(t, ioTimeout, "the result queued for the caller", func() bool {
		st, ok := s.e.statOf(t, c)
		return ok && st.backlog > blob/2
	})

	// Silent for the interval: pinged, the ping behind the result.
	s.tick(clk, kaInterval+time.Second)
	if !s.pingOutstanding(c) {
		t.Fatal("no ping after the interval")
	}
	s.waitPongs(c) // the callee answers its own
	// It reads 256 KiB of the result, not yet the ping.
	first := make([]byte, 256<<10)
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := io.ReadFull(w.br, first); err != nil {
		t.Fatal(err)
	}
	eventually(t, ioTimeout, "the router to see the output taken", func() bool {
		st, ok := s.e.statOf(t, c)
		return ok && st.backlog < blob-(128<<10)
	})
	s.tick(clk, kaTimeout+time.Second)
	if !s.openAt(c) {
		t.Fatalf("a peer reading its backlog was closed at the ping timeout (closes %v)", s.e.Stats().Closes)
	}

	// It reads the rest of the result, then the ping, and answers it.
	if first[0] != 0x82 || first[1] != 127 {
		t.Fatalf("result frame header % x", first[:10])
	}
	n := int(binary.BigEndian.Uint64(first[2:10]))
	msg := make([]byte, n)
	copy(msg, first[10:])
	if _, err := io.ReadFull(w.br, msg[len(first)-10:]); err != nil {
		t.Fatal(err)
	}
	if m, err := proto.Decode(proto.MsgPack, msg); err != nil || m.Type != proto.CodeResult {
		t.Fatalf("result: %v %v", m, err)
	}
	op, ping, err := w.readFrame(ioTimeout)
	if err != nil || op != opPing {
		t.Fatalf("after the result: op %d, %v", op, err)
	}
	w.write(cliFrame(true, opPong, ping))
	eventually(t, ioTimeout, "the pong to be taken", func() bool { return !s.pingOutstanding(c) })
	s.tick(clk, kaTimeout+time.Second)
	if !s.openAt(c) || s.e.Stats().Closes[CloseKeepalive] != 0 {
		t.Fatalf("closed after answering (closes %v)", s.e.Stats().Closes)
	}
	if m := p.call("wamp.session.count", nil); m.Type != proto.CodeResult {
		t.Fatalf("session after the result: %v", m.Type)
	}
}

// A peer with output waiting ahead of the ping that takes none of it is
// closed at the ping timeout (or, if its kernel was still taking bytes
// into its receive buffer when the ping went, at the next one).
func TestKeepaliveClosesStalledPeerWithBacklog(t *testing.T) {
	t.Parallel()
	s, clk := keepaliveServer(t, 0)
	const blob = 1 << 20
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	s.registerBlob(ctx, t, blob)

	c := dialTCP(t, s.url, 16<<10)
	w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack}
	w.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
	w.expectUpgrade()
	p := newWAMP(t, w, proto.MsgPack)
	p.join()
	shrinkRouterSendBuffer(t, c, 16<<10)
	p.c.send(p.callMsg(p.nextReq(), "com.blob", nil))
	eventually(t, ioTimeout, "the result queued for the caller", func() bool {
		st, ok := s.e.statOf(t, c)
		return ok && st.backlog > blob/2
	})
	s.tick(clk, kaInterval+time.Second)
	if !s.pingOutstanding(c) {
		t.Fatal("no ping after the interval")
	}
	s.waitPongs(c)
	s.tick(clk, kaTimeout+time.Second)
	if s.openAt(c) {
		s.waitPongs(c)
		s.tick(clk, kaTimeout+time.Second)
	}
	eventually(t, ioTimeout, "the router to close the stalled peer", func() bool { return !s.openAt(c) })
	if n := s.e.Stats().Closes[CloseKeepalive]; n != 1 {
		t.Fatalf("%d keepalive closes, want 1 (closes %v)", n, s.e.Stats().Closes)
	}
}

// The sparing of a peer reading behind its ping lasts until it has read
// the ping: a peer that has read past it and keeps taking output (events
// of a topic it subscribed to) but never answers is closed one timeout
// after it reached the ping, as any peer that does not answer. Before,
// every 16 KiB it took in a timeout, events it got after the ping
// included, spared it for another: a WebSocket peer that never answers
// pings was kept as long as it read, 16 KiB every timeout.
func TestKeepaliveSparesOnlyUntilPingRead(t *testing.T) {
	t.Parallel()
	s, clk := keepaliveServer(t, 0)
	const blob = 1 << 20
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	s.registerBlob(ctx, t, blob)
	pub := s.dial("rs", proto.MsgPack)

	c := dialTCP(t, s.url, 16<<10)
	w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack}
	w.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
	w.expectUpgrade()
	p := newWAMP(t, w, proto.MsgPack)
	p.join()
	p.subscribe("com.feed")
	shrinkRouterSendBuffer(t, c, 16<<10)
	p.c.send(p.callMsg(p.nextReq(), "com.blob", nil))
	eventually(t, ioTimeout, "the result queued for the caller", func() bool {
		st, ok := s.e.statOf(t, c)
		return ok && st.backlog > blob/2
	})
	s.tick(clk, kaInterval+time.Second)
	if !s.pingOutstanding(c) {
		t.Fatal("no ping after the interval")
	}
	s.waitPongs(c)
	// It reads the result and the ping, and does not answer.
	if op, _, err := w.readFrame(ioTimeout); err != nil || op != opBinary {
		t.Fatalf("result: op %d, %v", op, err)
	}
	if op, _, err := w.readFrame(ioTimeout); err != nil || op != opPing {
		t.Fatalf("after the result: op %d, %v", op, err)
	}
	// It keeps reading events, 32 KiB each timeout, silent.
	event := make([]byte, 32<<10)
	for round := 0; round < 4 && s.openAt(c); round++ {
		if err := pub.Publish(ctx, "com.feed", []any{event}, nil, nil); err != nil {
			t.Fatal(err)
		}
		if op, _, err := w.readFrame(ioTimeout); err != nil {
			break // closed
		} else if op != opBinary {
			t.Fatalf("event: op %d", op)
		}
		s.waitPongs(c)
		s.tick(clk, kaTimeout+time.Second)
	}
	eventually(t, ioTimeout, "the router to close the peer that never answers", func() bool { return !s.openAt(c) })
	if n := s.e.Stats().Closes[CloseKeepalive]; n != 1 {
		t.Fatalf("%d keepalive closes, want 1 (closes %v)", n, s.e.Stats().Closes)
	}
}
