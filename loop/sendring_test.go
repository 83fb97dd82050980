package loop

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/loop/uring"
)

// sockConn is the part of a gnet.Conn the flush uses, over a real socket:
// Write plays gnet's buffered write (it only records, as gnet appends to
// its outbound buffer once that holds anything). Other methods panic.
type sockConn struct {
	gnet.Conn
	fd       int
	buffered int // bytes "in gnet's outbound buffer"
	written  bytes.Buffer
	closes   int
}

func (s *sockConn) Fd() int               { return s.fd }
func (s *sockConn) OutboundBuffered() int { return s.buffered }
func (s *sockConn) Close() error          { s.closes++; return nil }
func (s *sockConn) InboundBuffered() int  { return 0 }
func (s *sockConn) Write(b []byte) (int, error) {
	s.written.Write(b)
	s.buffered += len(b)
	return len(b), nil
}

// ringFixture is a loop state with a ring and no gnet loop: conns are
// added over socketpairs.
func ringFixture(t *testing.T, entries int) *loopState {
	t.Helper()
	needRing(t)
	r, err := uring.New(entries)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	e := &Engine{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return &loopState{e: e, ring: r, poolMax: poolMaxBytes, keepMax: outBufKeep(defaultHighWater, poolMaxBytes)}
}

// addConn returns a connection in phRaw over a fresh socketpair, and the
// peer's descriptor.
func addConn(t *testing.T, ls *loopState) (*conn, *sockConn, int) {
	t.Helper()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(sp[0]); unix.Close(sp[1]) })
	sc := &sockConn{fd: sp[0]}
	cn := &conn{c: sc, ls: ls, phase: phRaw}
	return cn, sc, sp[1]
}

func queue(cn *conn, b []byte) {
	cn.out = append(cn.buf(), b...)
	cn.ls.markDirty(cn)
}

func readAll(t *testing.T, fd int) []byte {
	t.Helper()
	var out bytes.Buffer
	b := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, b)
		if n > 0 {
			out.Write(b[:n])
		}
		if err != nil || n <= 0 {
			return out.Bytes()
		}
	}
}

// One batch, every case of phase 3: a plain send; a connection gnet holds
// output for (no ring send: written behind gnet's buffer); a full socket
// (-EAGAIN: all of it to gnet); a short send (the rest, exactly, to gnet);
// a peer gone (-EPIPE: reason recorded, closed the deferred way); a dying
// connection's last bytes (sent, then closed); a gone connection (its
// descriptor never used).
func TestFlushRingPhases(t *testing.T) {
	ls := ringFixture(t, 64)
	plain, plainC, plainPeer := addConn(t, ls)
	behind, behindC, behindPeer := addConn(t, ls)
	full, fullC, _ := addConn(t, ls)
	short, shortC, shortPeer := addConn(t, ls)
	gone, goneC, gonePeer := addConn(t, ls)
	dying, dyingC, dyingPeer := addConn(t, ls)
	inert, inertC, inertPeer := addConn(t, ls)

	queue(plain, []byte("plain"))
	behindC.buffered = 7
	queue(behind, []byte("behind"))
	unix.SetsockoptInt(fullC.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	for {
		if _, err := unix.Write(fullC.fd, make([]byte, 4096)); err == unix.EAGAIN {
			break
		}
	}
	queue(full, []byte("full"))
	unix.SetsockoptInt(shortC.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	queue(short, big)
	unix.Close(gonePeer)
	queue(gone, []byte("to nobody"))
	queue(dying, []byte("last words"))
	dying.die(CloseSession, nil)
	queue(inert, []byte("never"))
	inert.phase = phGone
	inertC.fd = -1 // any use would fail

	ls.flush()

	if got := readAll(t, plainPeer); string(got) != "plain" || plainC.written.Len() != 0 {
		t.Errorf("plain: peer %q, gnet %q", got, plainC.written.String())
	}
	if got := readAll(t, behindPeer); len(got) != 0 || behindC.written.String() != "behind" {
		t.Errorf("behind gnet's buffer: a ring send went around it (peer %q, gnet %q)", got, behindC.written.String())
	}
	if fullC.written.String() != "full" {
		t.Errorf("full socket: gnet got %q", fullC.written.String())
	}
	peerGot := readAll(t, shortPeer)
	if len(peerGot) == 0 || len(peerGot) == len(big) {
		t.Fatalf("short send: peer read %d of %d", len(peerGot), len(big))
	}
	if !bytes.Equal(append(peerGot, shortC.written.Bytes()...), big) {
		t.Errorf("short send: sent prefix + rest to gnet is not the output")
	}
	if gone.phase != phDead || gone.reason != CloseReset || gone.reasonErr == nil ||
		!strings.Contains(gone.reasonErr.Error(), "send") || goneC.closes != 1 {
		t.Errorf("peer gone: phase %d reason %v (%v), %d closes", gone.phase, gone.reason, gone.reasonErr, goneC.closes)
	}
	if got := readAll(t, dyingPeer); string(got) != "last words" || dyingC.closes != 1 {
		t.Errorf("dying: peer %q, %d closes", got, dyingC.closes)
	}
	if got := readAll(t, inertPeer); len(got) != 0 || inertC.closes != 0 || inertC.written.Len() != 0 {
		t.Errorf("a gone connection was touched")
	}
	for _, cn := range []*conn{plain, behind, full, short, gone, dying} {
		if cn.inflight != 0 || cn.out != nil || cn.dirty {
			t.Errorf("state left: inflight %d, out %v, dirty %v", cn.inflight, cn.out != nil, cn.dirty)
		}
	}
	if len(ls.dirty) != 0 {
		t.Errorf("%d left on the dirty list", len(ls.dirty))
	}
	if p := ls.e.ringPartial.Load(); p != 2 {
		t.Errorf("%d partial sends counted, want 2 (full, short)", p)
	}
	if n, m := ls.e.ringSends.Load(), ls.e.ringEnters.Load(); n != 5 || m != 1 {
		t.Errorf("%d sends in %d enters, want 5 in 1", n, m)
	}
}

// A run of the dirty list longer than the ring is written in several
// batches, in order; a lone dirty connection is written with write(2)
// (gnet's Write), not the ring.
func TestFlushRingBatches(t *testing.T) {
	ls := ringFixture(t, 8)
	type pair struct {
		cn   *conn
		peer int
	}
	var ps []pair
	for i := range 21 {
		cn, _, peer := addConn(t, ls)
		queue(cn, []byte{byte(i)})
		ps = append(ps, pair{cn, peer})
	}
	ls.flush()
	for i, p := range ps {
		if got := readAll(t, p.peer); len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("connection %d: peer read %v", i, got)
		}
	}
	if n, m := ls.e.ringSends.Load(), ls.e.ringEnters.Load(); n != 21 || m != 3 {
		t.Fatalf("%d sends in %d enters, want 21 in 3", n, m)
	}
	lone, loneC, _ := addConn(t, ls)
	queue(lone, []byte("alone"))
	ls.flush()
	if loneC.written.String() != "alone" || ls.e.ringSends.Load() != 21 {
		t.Fatalf("a lone connection went through the ring")
	}
}

// spill does not write while a connection has bytes in flight: they would
// overtake the rest of its send, not yet in gnet's buffer.
func TestSpillHeldWhileInflight(t *testing.T) {
	ls := ringFixture(t, 8)
	cn, _, peer := addConn(t, ls)
	cn.out = append(cn.buf(), "later"...)
	cn.inflight = 100
	cn.spill()
	if got := readAll(t, peer); len(got) != 0 || !cn.full || string(cn.out) != "later" {
		t.Fatalf("spill wrote %q during a send in flight", got)
	}
	cn.inflight = 0
	cn.full = false
	cn.spill()
	if got := readAll(t, peer); string(got) != "later" {
		t.Fatalf("spill after: %q", got)
	}
}

// A round of the ring path allocates nothing: buffers come from the pool,
// the batch and the completions are reused.
func TestFlushRingAllocs(t *testing.T) {
	ls := ringFixture(t, 64)
	var peers []int
	var conns []*conn
	for range 32 {
		cn, _, peer := addConn(t, ls)
		conns = append(conns, cn)
		peers = append(peers, peer)
	}
	msg := []byte("an event of a few bytes")
	b := make([]byte, 4096)
	round := func() {
		for _, cn := range conns {
			queue(cn, msg)
		}
		ls.flush()
		for _, p := range peers {
			unix.Read(p, b)
		}
	}
	round()
	if allocs := testing.AllocsPerRun(100, round); allocs != 0 {
		t.Fatalf("%v allocations per round", allocs)
	}
}
