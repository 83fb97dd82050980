package loop

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// The input behind a waiting batch (behindBatch) and a peer's
// close while the rest waits.

// onLoop runs f on ls's goroutine and waits for it.
func onLoop(t testing.TB, ls *loopState, f func()) {
	t.Helper()
	done := make(chan struct{})
	if err := ls.Execute(func() { f(); close(done) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not run the task")
	}
}

// onlyLoop returns the engine's loop (Shards = 1).
func onlyLoop(t testing.TB, s *testServer) *loopState {
	t.Helper()
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	if len(s.e.loops) != 1 {
		t.Fatalf("%d loops, want 1", len(s.e.loops))
	}
	for _, ls := range s.e.loops {
		return ls
	}
	return nil
}

// holdBatches makes ls's batches wait for their turns as they do on a busy
// loop, for as long as the test wants (instead of for as long as another
// session's traffic happens to keep the loop busy): gnetBusy sees an event
// (a pipe with unread data, in an epoll of the test's), so a batch's rest
// waits after its first turn, and runBatches, once it has run, is not
// queued again until release.
func holdBatches(t testing.TB, ls *loopState) (release func()) {
	t.Helper()
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	unix.Write(p[1], []byte{1})
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, p[0], &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p[0])}); err != nil {
		t.Fatal(err)
	}
	var savedEp, savedEfd int
	var savedFn func()
	onLoop(t, ls, func() {
		savedEp, savedEfd, savedFn = ls.gnetEpfd, ls.gnetEfd, ls.batchFn
		ls.gnetEpfd, ls.gnetEfd = epfd, -1
		ls.batchFn = func() {} // batchQueued stays set: not queued again
	})
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		onLoop(t, ls, func() {
			ls.gnetEpfd, ls.gnetEfd, ls.batchFn = savedEp, savedEfd, savedFn
			ls.batchQueued, ls.batchWait = false, false
			ls.queueBatches()
		})
		unix.Close(epfd)
		unix.Close(p[0])
		unix.Close(p[1])
	}
	t.Cleanup(release)
	return release
}

// heldBatchOf reports, on the loop, whether a connection of ls holds a
// batch, and the most gnet and the TLS layer buffer for such a connection.
func heldBatchOf(t testing.TB, ls *loopState) (held bool, buffered int, phases []phase) {
	onLoop(t, ls, func() {
		for _, cn := range ls.conns {
			if cn != nil && cn.batch != nil {
				held = true
				buffered = max(buffered, cn.c.InboundBuffered(), cn.in.InboundBuffered())
				phases = append(phases, cn.phase)
			}
		}
	})
	return
}

// welcomeID joins realm1 on a batched JSON WebSocket and returns the
// session id from WELCOME.
func batchedSessionID(t *testing.T, w *wsClient) uint64 {
	t.Helper()
	w.write(cliFrame(true, opText, append(helloMsg(t, proto.JSON), 0x1e)))
	b, err := w.readMsg(ioTimeout)
	if err != nil {
		t.Fatalf("welcome: %v", err)
	}
	var v []any
	if err := json.Unmarshal(bytes.TrimSuffix(b, []byte{0x1e}), &v); err != nil || len(v) < 2 || v[0] != float64(2) {
		t.Fatalf("welcome: %q %v", b, err)
	}
	return uint64(v[1].(float64))
}

// The router's Close frame is the last frame a connection sends ("one is
// all a connection sends", wsFail; wsFrame answers no ping in phClosing;
// expectClose checks nothing follows it). A connection whose session the
// router closes (here: killed, then closed at GoodbyeTimeout) while the
// rest of its batch waits parses its later input in behindBatch, which
// answers a ping whatever the phase: a Pong goes out after the Close frame.
func TestBatchedNoPongAfterCloseFrame(t *testing.T) {
	s := startServer(t, func(o *Options, rc *route.Config) {
		rc.Shards = 1
		rc.GoodbyeTimeout = 200 * time.Millisecond
	})
	ls := onlyLoop(t, s)
	killer := s.dial("ws", proto.JSON)

	c := dialTCP(t, s.url, 0)
	w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.JSON}
	w.write(wsUpgradeRequest("/ws", proto.JSON.Subprotocol(true)))
	if r := readHTTPResponse(t, w.br, c); r.status != 101 {
		t.Fatalf("upgrade: %d", r.status)
	}
	id := batchedSessionID(t, w)

	release := holdBatches(t, ls)
	w.write(cliFrame(true, opText, batchOf(512<<10, "")))
	eventually(t, ioTimeout, "the batch's rest to wait", func() bool {
		held, _, _ := heldBatchOf(t, ls)
		return held
	})

	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if _, err := killer.Call(ctx, "wamp.session.kill", []any{id}, nil, nil); err != nil {
		t.Fatalf("kill: %v", err)
	}
	// GOODBYE, left unanswered; the router closes at GoodbyeTimeout.
	gotClose := false
	for !gotClose {
		op, p, err := w.readFrame(ioTimeout)
		if err != nil {
			t.Fatalf("waiting for the router's Close frame: %v", err)
		}
		t.Logf("frame op %d: %q", op, p[:min(len(p), 60)])
		gotClose = op == opClose
	}
	_, _, phases := heldBatchOf(t, ls)
	t.Logf("after the router's Close frame, the connection's batch still waits (phases %v)", phases)

	w.write(cliFrame(true, opPing, []byte("after-close")))
	op, p, err := w.readFrame(700 * time.Millisecond)
	release()
	if err == nil {
		t.Fatalf("after its Close frame the router sent a frame (op %d %q): want nothing after the Close frame", op, p)
	}
}

// A frame announcing more than max_message is refused at once, 1009,
// "before anything is allocated" (README's limits: one message). Behind a
// waiting batch its header stops behindBatch (framing errors wait for
// their turn), and everything the peer streams after it stays in gnet's
// buffer, grown by steps, counted against max_inbound_total, until the
// batch is routed: one connection holds many times max_message in gnet's
// buffer for a message it is not allowed to send.
func TestBatchedOversizedFrameBehindBatchDiscarded(t *testing.T) {
	s := startServer(t, func(o *Options, rc *route.Config) {
		rc.Shards = 1
		o.MaxMessage = 1 << 20
	})
	ls := onlyLoop(t, s)
	release := holdBatches(t, ls)
	w := dialWSBatched(t, s.url)
	w.write(cliFrame(true, opText, batchOf(512<<10, "")))
	eventually(t, ioTimeout, "the batch's rest to wait", func() bool {
		held, _, _ := heldBatchOf(t, ls)
		return held
	})
	// A text frame announcing 64 MiB (max_message is 1 MiB), masked.
	hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0x04, 0, 0, 0, 1, 2, 3, 4}
	w.write(hdr)
	chunk := bytes.Repeat([]byte{'a'}, 256<<10)
	refused := false
	for i := 0; i < 32 && !refused; i++ { // 8 MiB
		w.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := w.c.Write(chunk); err != nil {
			refused = true
		}
	}
	time.Sleep(200 * time.Millisecond)
	_, buffered, _ := heldBatchOf(t, ls)
	inb, _, _ := s.e.Inbound()
	t.Logf("after a header announcing 64 MiB (max_message 1 MiB) and 8 MiB of its payload: gnet buffers %d bytes, inbound held %d", buffered, inb)
	release()
	if buffered > 2<<20 {
		t.Errorf("gnet's buffer holds %d bytes (%.1f x max_message) for a frame over max_message: want it refused (1009) before its payload is held", buffered, float64(buffered)/float64(1<<20))
	}

}

// The same under real load, without holding the batch: another session's
// publications make a 4 MiB batch wait for its turns (as in
// TestBatchedLargeFrameGatheredBehindSmallFrame), and the oversized frame's
// payload piles up in gnet's buffer meanwhile.
func TestBatchedOversizedFrameBehindBatchUnderLoad(t *testing.T) {
	s := startServer(t, func(o *Options, rc *route.Config) {
		rc.Shards = 1
		o.MaxMessage = 4 << 20
	})
	ls := onlyLoop(t, s)
	stop := publishing(t, s, s.url)
	defer stop()
	w := dialWSBatched(t, s.url)
	type probe struct {
		maxBuf int
		saw    bool
	}
	probed := make(chan probe, 1)
	go func() {
		m, saw := batchProbe(ls, 20*time.Second)
		probed <- probe{m, saw}
	}()
	batch := batchOf(4<<20-64, "")
	hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0x04, 0, 0, 0, 1, 2, 3, 4} // 64 MiB announced
	out := append(cliFrame(true, opText, batch), hdr...)
	out = append(out, bytes.Repeat([]byte{'a'}, 32<<20)...)
	go func() {
		w.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		w.c.Write(out)
	}()
	r := <-probed
	if !r.saw {
		t.Skip("the batch did not wait")
	}
	t.Logf("while the batch waited, gnet buffered up to %d bytes behind it (max_message %d)", r.maxBuf, 4<<20)
	if r.maxBuf > 4<<20 {
		t.Errorf("gnet's buffer held %d bytes behind the batch for a frame announcing more than max_message: want it refused before its payload is held", r.maxBuf)
	}
}

// Check (passes): TLS close_notify without a FIN while the rest waits: the
// rest is routed, then the connection closes.
func TestBatchedTLSCloseNotifyOnly(t *testing.T) {
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(o *Options, rc *route.Config) { rc.Shards = 1 })
	ls := onlyLoop(t, s)
	c, err := tls.Dial("tcp", s.url, cert.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := wsBatchedOn(t, c)
	sessions := s.r.SessionCount()
	release := holdBatches(t, ls)
	w.write(cliFrame(true, opText, batchOf(512<<10, "")))
	eventually(t, ioTimeout, "the batch's rest to wait", func() bool {
		held, _, _ := heldBatchOf(t, ls)
		return held
	})
	w.write(cliFrame(true, opPing, []byte("p")))
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if s.r.SessionCount() != sessions {
		t.Fatalf("the session left before its rest was routed")
	}
	release()
	eventually(t, 10*time.Second, "the session to leave and the budget to be back at 0", func() bool {
		held, _, _ := s.e.Inbound()
		return s.r.SessionCount() == sessions-1 && held == 0
	})
	waitClosed(t, c, 5*time.Second)
}
