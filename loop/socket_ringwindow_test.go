package loop

import (
	"bufio"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Output produced for a connection while its io_uring batch completes is
// judged by what the socket did not take, not by the whole send: a
// WebSocket peer A that closes its WebSocket before reading its last
// events lingers, and its session leaves in the middle of the batch's
// completion (conn.sent: linger), firing A's testament to a subscriber B
// of the same loop later in the same batch. B reads; its socket took the
// whole 30 KiB send of the batch. B's inflight still counted those 30 KiB,
// past its 16 KiB high-water mark, so the testament was refused as
// ErrPeerSlow: B never got it ("refused"); with a hard_limit of 24 KiB B
// was closed as a slow consumer instead ("closed").
func TestRingBatchSentNotCountedInWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		hard int
	}{{"refused", 0}, {"closed", 24 << 10}} {
		t.Run(tc.name, func(t *testing.T) { ringWindowCase(t, tc.hard) })
	}
}

func ringWindowCase(t *testing.T, hard int) {
	const high = 16 << 10
	s := startRingServer(t, func(o *Options, rc *route.Config) {
		rc.Shards = 1 // A, B and the publisher on the one loop: one batch
		o.HighWater, o.HardLimit = high, hard
	})
	const topic, fill = "com.ring.window", "com.ring.window.fill"

	// B: a subscriber that reads, with room in its socket for the batch.
	b := subscribeMany(t, s.url, 1, topic)[0]
	shrinkRouterSendBuffer(t, b.c, 1<<20) // the send of the batch is taken whole

	// A: a WebSocket session with a testament to topic, whose peer does
	// not read: its router socket fills, and gnet holds some of its output.
	ac := dialTCP(t, s.url, 4<<10)
	aw := &wsClient{t: t, c: ac, br: bufio.NewReaderSize(ac, 64<<10), ser: proto.MsgPack}
	aw.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
	aw.expectUpgrade()
	shrinkRouterSendBuffer(t, ac, 4<<10)
	a := newWAMP(t, aw, proto.MsgPack)
	a.join()
	a.subscribe(fill)

	pub := s.joinRS(t, proto.MsgPack)
	chunk := strings.Repeat("f", 2<<10)
	eventually(t, ioTimeout, "gnet holding output for A", func() bool {
		pub.c.send(pub.publishMsg(pub.nextReq(), fill, []any{chunk}, true))
		pub.expect(proto.CodePublished)
		st, ok := s.e.statOf(t, ac)
		return ok && st.backlog > 0
	})
	if st, _ := s.e.statOf(t, ac); st.backlog > high {
		t.Fatalf("A's backlog %d past the high-water mark %d", st.backlog, high)
	}

	// In one segment: A adds its testament (the RESULT makes A the batch's
	// first connection), publishes two events of 15 KiB to B (30 KiB for B
	// in the batch: the second is taken at a backlog of 15 KiB, under the
	// mark) and closes its WebSocket.
	big := strings.Repeat("e", 15<<10)
	base := s.r.SessionCount()
	var seg []byte
	seg = append(seg, cliFrame(true, opBinary, a.callMsg(a.nextReq(), "wamp.session.add_testament",
		[]any{topic, []any{3}}))...)
	seg = append(seg, cliFrame(true, opBinary, a.publishMsg(a.nextReq(), topic, []any{1, big}, false))...)
	seg = append(seg, cliFrame(true, opBinary, a.publishMsg(a.nextReq(), topic, []any{2, big}, false))...)
	seg = append(seg, cliFrame(true, opClose, []byte{0x03, 0xe8})...)
	aw.write(seg)
	eventually(t, ioTimeout, "A's session gone", func() bool { return s.r.SessionCount() < base })

	// Then a marker, after the testament.
	pub.c.send(pub.publishMsg(pub.nextReq(), topic, []any{4}, true))
	pub.expect(proto.CodePublished)
	for want := 1; want <= 4; want++ {
		if got := eventSeq(t, b.readMsg(t, proto.MsgPack)); got != want {
			t.Fatalf("B got event %d, want %d (3 is A's testament); stats %+v", got, want, s.e.Stats())
		}
	}
}

// A connection of an io_uring batch that gnet already held output for is
// not sent through the ring: its output is taken and written through gnet
// at its completion. Until then that output is still its backlog. B, a
// subscriber that does not read, has 10-12 KiB held by gnet and gets a
// 15 KiB event from A in the batch; A's session leaves in the batch's
// completion (linger) and its testament comes to B: past B's hard_limit
// of 24 KiB, B is closed as a slow consumer then. Before, B's backlog
// missed the 15 KiB taken from it, the testament was queued behind them,
// and B stayed open past hard_limit until some later output for it.
func TestRingBatchHeldByGnetCountedInWindow(t *testing.T) {
	const high, hard = 16 << 10, 24 << 10
	s := startRingServer(t, func(o *Options, rc *route.Config) {
		rc.Shards = 1 // A, B and the publisher on the one loop: one batch
		o.HighWater, o.HardLimit = high, hard
	})
	const topic, fill = "com.ring.held", "com.ring.held.fill"
	pub := s.joinRS(t, proto.MsgPack)
	chunk := strings.Repeat("f", 2<<10)

	// B: a subscriber to topic that does not read, gnet holding 10-12 KiB
	// of its output (under high_water: the next event is taken).
	b := subscribeManyBuf(t, s.url, 1, topic, 4<<10)[0]
	shrinkRouterSendBuffer(t, b.c, 4<<10)
	eventually(t, ioTimeout, "gnet holding 10 KiB for B", func() bool {
		pub.c.send(pub.publishMsg(pub.nextReq(), topic, []any{0, chunk}, true))
		pub.expect(proto.CodePublished)
		st, ok := s.e.statOf(t, b.c)
		return ok && st.backlog >= 10<<10
	})
	if st, _ := s.e.statOf(t, b.c); st.backlog > high {
		t.Fatalf("B's backlog %d past the high-water mark %d", st.backlog, high)
	}

	// A: a WebSocket session whose peer does not read (so that its Close
	// lingers), as in ringWindowCase.
	ac := dialTCP(t, s.url, 4<<10)
	aw := &wsClient{t: t, c: ac, br: bufio.NewReaderSize(ac, 64<<10), ser: proto.MsgPack}
	aw.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
	aw.expectUpgrade()
	shrinkRouterSendBuffer(t, ac, 4<<10)
	a := newWAMP(t, aw, proto.MsgPack)
	a.join()
	a.subscribe(fill)
	eventually(t, ioTimeout, "gnet holding output for A", func() bool {
		pub.c.send(pub.publishMsg(pub.nextReq(), fill, []any{chunk}, true))
		pub.expect(proto.CodePublished)
		st, ok := s.e.statOf(t, ac)
		return ok && st.backlog > 0
	})
	if st, _ := s.e.statOf(t, b.c); st.backlog < 10<<10 || st.backlog > high {
		t.Fatalf("B's backlog %d moved", st.backlog)
	}

	// In one segment: A's testament (its RESULT makes A the batch's first
	// connection), a 15 KiB event to B, and A's Close.
	big := strings.Repeat("e", 15<<10)
	before := s.e.Stats().Closes[CloseSlowConsumer]
	base := s.r.SessionCount()
	var seg []byte
	seg = append(seg, cliFrame(true, opBinary, a.callMsg(a.nextReq(), "wamp.session.add_testament",
		[]any{topic, []any{3}}))...)
	seg = append(seg, cliFrame(true, opBinary, a.publishMsg(a.nextReq(), topic, []any{1, big}, false))...)
	seg = append(seg, cliFrame(true, opClose, []byte{0x03, 0xe8})...)
	aw.write(seg)
	eventually(t, ioTimeout, "A's session gone", func() bool { return s.r.SessionCount() < base })
	// No output for B follows: its testament alone must close it.
	eventually(t, ioTimeout, "B closed as a slow consumer at its testament", func() bool {
		return s.e.Stats().Closes[CloseSlowConsumer] > before
	})
}

// The output an io_uring batch takes from a connection gnet holds output
// for counts in its backlog until the batch's completion (a101911), and
// no longer: once gnet has written it (EPOLLOUT, after the round) the
// connection's backlog is what gnet still holds, so a subscriber that
// catches up takes output under high_water again. B does not read until
// gnet holds 6 KiB or more of its output; an 8 KiB event then comes to it
// in a batch (B not sent through the ring); B reads everything, its
// backlog must fall to 0 (a stale inflight would leave the 8 KiB), and
// two 12 KiB events (under high_water only if nothing stale is counted)
// must reach it, B not closed.
func TestRingBatchHeldByGnetThenDrainedTakesOutput(t *testing.T) {
	const high, hard = 16 << 10, 24 << 10
	s := startRingServer(t, func(o *Options, rc *route.Config) {
		rc.Shards = 1 // B and the publisher on the one loop: one batch
		o.HighWater, o.HardLimit = high, hard
	})
	const topic = "com.ring.held.drain"
	pub := s.joinRS(t, proto.MsgPack)
	b := subscribeManyBuf(t, s.url, 1, topic, 4<<10)[0]
	shrinkRouterSendBuffer(t, b.c, 4<<10)

	seq := 0
	publish := func(n int) {
		t.Helper()
		seq++
		pub.c.send(pub.publishMsg(pub.nextReq(), topic, []any{seq, strings.Repeat("x", n)}, true))
		pub.expect(proto.CodePublished)
	}
	eventually(t, ioTimeout, "gnet holding 6 KiB for B", func() bool {
		publish(1 << 10)
		st, ok := s.e.statOf(t, b.c)
		return ok && st.backlog >= 6<<10
	})
	held, _ := s.e.statOf(t, b.c)
	if held.backlog > high-(9<<10) {
		t.Fatalf("B's backlog %d: no room for the 8 KiB event", held.backlog)
	}
	sends := s.e.Stats().RingSends
	publish(8 << 10)
	if st, _ := s.e.statOf(t, b.c); st.backlog < held.backlog+8<<10 {
		t.Fatalf("B's backlog %d after the 8 KiB event, was %d", st.backlog, held.backlog)
	}
	if d := s.e.Stats().RingSends - sends; d != 1 {
		t.Fatalf("%d ring sends for the batch of the publisher and B, want 1 (B held by gnet)", d)
	}
	closes := s.e.Stats().Closes[CloseSlowConsumer]

	// B catches up: gnet writes what it held on EPOLLOUT.
	for want := 1; want <= seq; want++ {
		if got := eventSeq(t, b.readMsg(t, proto.MsgPack)); got != want {
			t.Fatalf("B got event %d, want %d", got, want)
		}
	}
	eventually(t, ioTimeout, "B's backlog back to 0", func() bool {
		st, ok := s.e.statOf(t, b.c)
		return ok && st.backlog == 0
	})
	for i := 0; i < 2; i++ {
		publish(12 << 10)
		if got := eventSeq(t, b.readMsg(t, proto.MsgPack)); got != seq {
			t.Fatalf("B got event %d, want %d", got, seq)
		}
	}
	if st := s.e.Stats(); st.Closes[CloseSlowConsumer] != closes {
		t.Fatalf("a slow-consumer close: %+v", st.Closes)
	}
}
