package loop

// The io_uring send path (sendring.go) end to end, over real loopback
// sockets: thousands of subscribers written in one round, ordering when
// sockets take part of a send or none of it (a slow reader), peers that
// reset or leave while their sends are being batched, and the choice of
// path: forced off, required, and blocked by a seccomp filter as Docker's
// default profile blocks it. The rest of the package's tests run on
// whichever path EDGEWAMP_TEST_IO_URING names (make test runs both).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop/uring"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// needRing skips a test of the io_uring path where io_uring is unavailable
// (saying why), or fails it under EDGEWAMP_TEST_IO_URING=on; in the
// EDGEWAMP_TEST_IO_URING=off pass it skips: the default pass ran it.
func needRing(t *testing.T) {
	t.Helper()
	if testIOUring != nil && *testIOUring == IOUringOff {
		t.Skip("EDGEWAMP_TEST_IO_URING=off: the io_uring tests run in the default pass")
	}
	if err := uring.Probe(); err != nil {
		if testIOUring != nil && *testIOUring == IOUringOn {
			t.Fatalf("io_uring unavailable: %v", err)
		}
		t.Skipf("io_uring unavailable: %v", err)
	}
}

// startRingServer starts an engine on the io_uring path.
func startRingServer(t *testing.T, mutate func(*Options, *route.Config)) *testServer {
	t.Helper()
	needRing(t)
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.IOUring = IOUringOn
		if mutate != nil {
			mutate(o, rc)
		}
	})
	if st := s.e.Stats(); st.SendPath != SendPathIOUring {
		t.Fatalf("send path %q", st.SendPath)
	}
	return s
}

// rsSub is a RawSocket subscriber joined by pipelined handshake, HELLO and
// SUBSCRIBE.
type rsSub struct {
	c  net.Conn
	br *bufio.Reader
}

// readRSMsg reads one RawSocket message frame.
func (s *rsSub) readMsg(t testing.TB, ser proto.Serializer) *proto.Message {
	t.Helper()
	s.c.SetReadDeadline(time.Now().Add(ioTimeout))
	var h [4]byte
	if _, err := readFull(s.br, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	p := make([]byte, n)
	if _, err := readFull(s.br, p); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if h[0] != 0 {
		t.Fatalf("frame type %d", h[0])
	}
	m, err := proto.Decode(ser, p)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return m
}

func readFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := br.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// subscribeMany opens n RawSocket MsgPack subscribers to topic, writing
// every handshake first and reading the replies after.
func subscribeMany(t *testing.T, addr string, n int, topic string) []*rsSub {
	t.Helper()
	return subscribeManyBuf(t, addr, n, topic, 0)
}

// subscribeManyBuf is subscribeMany with the subscribers' receive buffers
// set to rcvBuf (0: the system's).
func subscribeManyBuf(t *testing.T, addr string, n int, topic string, rcvBuf int) []*rsSub {
	t.Helper()
	ser := proto.MsgPack
	req := rsFrame(0, helloMsg(t, ser))
	req = append(rsHandshake(ser, 15), req...)
	req = append(req, rsFrame(0, encodeMsg(t, ser, &proto.Message{Type: proto.CodeSubscribe, Request: 1,
		Dict: emptyDict(t, ser), URI: []byte(topic)}))...)
	subs := make([]*rsSub, n)
	for i := range subs {
		c := dialTCP(t, addr, rcvBuf)
		c.SetWriteDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		subs[i] = &rsSub{c: c, br: bufio.NewReaderSize(c, 4<<10)}
	}
	for i, s := range subs {
		s.c.SetReadDeadline(time.Now().Add(ioTimeout))
		var hs [4]byte
		if _, err := readFull(s.br, hs[:]); err != nil || hs[0] != 0x7f {
			t.Fatalf("subscriber %d: handshake % x %v", i, hs, err)
		}
		if m := s.readMsg(t, ser); m.Type != proto.CodeWelcome {
			t.Fatalf("subscriber %d: %v", i, m.Type)
		}
		if m := s.readMsg(t, ser); m.Type != proto.CodeSubscribed {
			t.Fatalf("subscriber %d: %v", i, m.Type)
		}
	}
	return subs
}

// eventSeq returns the first argument of an EVENT as an int.
func eventSeq(t testing.TB, m *proto.Message) int {
	t.Helper()
	if m.Type != proto.CodeEvent {
		t.Fatalf("got %v, want EVENT", m.Type)
	}
	a := args(t, m)
	if len(a) == 0 {
		t.Fatal("EVENT without arguments")
	}
	switch v := a[0].(type) {
	case int64:
		return int(v)
	case uint64:
		return int(v)
	case int8, int16, int32, uint8, uint16, uint32, int:
		var n int
		fmt.Sscan(fmt.Sprint(v), &n)
		return n
	case float64:
		return int(v)
	}
	t.Fatalf("EVENT argument %T %v", a[0], a[0])
	return 0
}

// A fan-out to more subscribers than a ring takes at once: every
// subscriber gets every event, in order, and the sends go out in batches
// (hundreds per io_uring_enter), not one kernel entry each.
func TestSocketRingThousandsInOneRound(t *testing.T) {
	s := startRingServer(t, func(o *Options, _ *route.Config) {
		o.MaxConnsPerAddress = -1 // every subscriber at 127.0.0.1
	})
	const nsubs, events = 2200, 5
	subs := subscribeMany(t, s.url, nsubs, "com.ring.fanout")
	pub := dialRaw(t, s.url, "rs", proto.JSON)
	pw := newWAMP(t, pub.mc, proto.JSON)
	pw.join()
	before := s.e.Stats()
	for i := range events {
		pub.c.Write(pub.data(pw.publishMsg(pw.nextReq(), "com.ring.fanout", []any{i}, true)))
		pw.expect(proto.CodePublished)
	}
	for i, sub := range subs {
		for want := range events {
			if got := eventSeq(t, sub.readMsg(t, proto.MsgPack)); got != want {
				t.Fatalf("subscriber %d: event %d, want %d", i, got, want)
			}
		}
	}
	after := s.e.Stats()
	sends, enters := after.RingSends-before.RingSends, after.RingEnters-before.RingEnters
	t.Logf("%d sends in %d io_uring_enter calls (%.0f per enter), %d partial", sends, enters,
		float64(sends)/float64(max(enters, 1)), after.RingPartial-before.RingPartial)
	if sends < nsubs {
		t.Fatalf("%d ring sends for %d subscribers × %d events", sends, nsubs, events)
	}
	if enters == 0 || sends/enters < 100 {
		t.Fatalf("%d sends in %d enters: not batched", sends, enters)
	}
}

// Ordering under short sends and -EAGAIN: a subscriber with a small
// receive buffer that reads slowly, among fast ones, gets a burst of 12 MB,
// more than a loopback socket's send buffer grows to (tcp_wmem, 4 MiB).
// Its socket fills: ring sends come back short or -EAGAIN and the rest
// goes through gnet's buffer. It must read every event once, in order (the
// marks are raised so that none is dropped).
func TestSocketRingSlowReaderOrdering(t *testing.T) {
	s := startRingServer(t, func(o *Options, _ *route.Config) {
		o.HighWater, o.HardLimit = 32<<20, 64<<20
	})
	const events, payload = 3000, 4096
	topic := "com.ring.slow"
	fast := subscribeMany(t, s.url, 3, topic)
	slow := subscribeRaw(t, dialTCP(t, s.url, 4096), topic)
	pub := dialRaw(t, s.url, "rs", proto.JSON)
	pw := newWAMP(t, pub.mc, proto.JSON)
	pw.join()
	before := s.e.Stats()
	pad := strings.Repeat("x", payload)
	var burst []byte
	for i := range events {
		burst = append(burst, pub.data(pw.publishMsg(pw.nextReq(), topic, []any{i, pad}, i == events-1))...)
		if len(burst) > 64<<10 || i == events-1 {
			pub.c.SetWriteDeadline(time.Now().Add(ioTimeout))
			if _, err := pub.c.Write(burst); err != nil {
				t.Fatal(err)
			}
			burst = burst[:0]
		}
	}
	pw.expect(proto.CodePublished)
	var wg sync.WaitGroup
	errs := make(chan error, len(fast))
	for i, f := range fast {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for want := range events {
				f.c.SetReadDeadline(time.Now().Add(ioTimeout))
				var h [4]byte
				if _, err := readFull(f.br, h[:]); err != nil {
					errs <- fmt.Errorf("fast subscriber %d: %v", i, err)
					return
				}
				p := make([]byte, int(h[1])<<16|int(h[2])<<8|int(h[3]))
				if _, err := readFull(f.br, p); err != nil {
					errs <- fmt.Errorf("fast subscriber %d: %v", i, err)
					return
				}
				m, err := proto.Decode(proto.MsgPack, p)
				if err != nil || m.Type != proto.CodeEvent {
					errs <- fmt.Errorf("fast subscriber %d: %v %v", i, m, err)
					return
				}
				v, _ := proto.DecodeValue(m.Args)
				if l, _ := v.([]any); len(l) == 0 || fmt.Sprint(l[0]) != fmt.Sprint(want) {
					errs <- fmt.Errorf("fast subscriber %d: event %v, want %d", i, l, want)
					return
				}
			}
		}()
	}
	for want := range events {
		if want%300 == 0 {
			time.Sleep(20 * time.Millisecond) // slow: the router's socket stays full
		}
		if got := eventSeq(t, slow.next()); got != want {
			t.Fatalf("slow subscriber: event %d, want %d", got, want)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	after := s.e.Stats()
	partial := after.RingPartial - before.RingPartial
	t.Logf("%d ring sends, %d partial", after.RingSends-before.RingSends, partial)
	if partial == 0 {
		t.Fatal("no ring send came back short or -EAGAIN: the test did not exercise the hand-over to gnet")
	}
}

// Peers that reset, say GOODBYE or send a WebSocket close while events to
// them are being batched: the router closes each the safe way, the others
// get every event in order, and nothing is left behind.
func TestSocketRingLeaversDuringRounds(t *testing.T) {
	s := startRingServer(t, nil)
	h := newHealthy(s)
	topic := "com.ring.leavers"
	stay := subscribeMany(t, s.url, 10, topic)
	type leaver struct {
		kind string
		p    *rawPeer
		w    *wamp
	}
	var leavers []leaver
	for i := range 30 {
		kind := []string{"reset", "goodbye", "wsclose"}[i%3]
		transport := "rs"
		if kind == "wsclose" || i%2 == 0 {
			transport = "ws"
		}
		p := dialRaw(t, s.url, transport, proto.MsgPack)
		w := newWAMP(t, p.mc, proto.MsgPack)
		w.join()
		w.subscribe(topic)
		leavers = append(leavers, leaver{kind, p, w})
	}
	pub := dialRaw(t, s.url, "rs", proto.JSON)
	pw := newWAMP(t, pub.mc, proto.JSON)
	pw.join()
	before := s.e.Stats()
	const events = 300
	for i := range events {
		pub.c.Write(pub.data(pw.publishMsg(pw.nextReq(), topic, []any{i}, false)))
		if i%10 == 5 && len(leavers) > 0 {
			l := leavers[0]
			leavers = leavers[1:]
			switch l.kind {
			case "reset":
				resetConn(l.p.c)
			case "goodbye":
				l.p.c.Write(l.p.data(l.w.goodbye()))
			case "wsclose":
				l.p.c.Write(cliFrame(true, opClose, []byte{0x03, 0xe8}))
			}
		}
	}
	pub.c.Write(pub.data(pw.publishMsg(pw.nextReq(), topic, []any{events}, true)))
	pw.expect(proto.CodePublished)
	for i, sub := range stay {
		for want := 0; want <= events; want++ {
			if got := eventSeq(t, sub.readMsg(t, proto.MsgPack)); got != want {
				t.Fatalf("subscriber %d: event %d, want %d", i, got, want)
			}
		}
	}
	h.check()
	// The leavers are gone: the 10 subscribers, the publisher and the
	// healthy pair remain.
	eventually(t, ioTimeout, "leavers closed", func() bool { return len(s.e.connStats(t)) == 13 })
	after := s.e.Stats()
	if after.RingSends == before.RingSends {
		t.Fatal("no ring sends")
	}
	for _, r := range []CloseReason{CloseSession, CloseWSClose} {
		if after.Closes[r] == before.Closes[r] {
			t.Errorf("no %s close counted", r)
		}
	}
}

// The path is chosen at start: off writes with write(2) whatever the
// system has; on uses the ring. Both carry the same traffic.
func TestSendPathChoice(t *testing.T) {
	for _, mode := range []IOUringMode{IOUringOff, IOUringOn} {
		t.Run(mode.String(), func(t *testing.T) {
			if mode == IOUringOn {
				needRing(t)
			}
			var logs strings.Builder
			var mu sync.Mutex
			s := startServer(t, func(o *Options, _ *route.Config) {
				o.IOUring = mode
				o.Logger = newTestLogger(&lockedWriter{w: &logs, mu: &mu})
			})
			sub := s.dial("rs", proto.MsgPack)
			got := make(chan int, 16)
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			if _, err := sub.Subscribe(ctx, "com.path", func(e *client.Event) { got <- len(e.Args) }, nil); err != nil {
				t.Fatal(err)
			}
			sub2 := s.dial("ws", proto.JSON)
			if _, err := sub2.Subscribe(ctx, "com.path", func(e *client.Event) { got <- len(e.Args) }, nil); err != nil {
				t.Fatal(err)
			}
			pub := s.dial("ws", proto.CBOR)
			for range 10 {
				if err := pub.Publish(ctx, "com.path", []any{1}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
					t.Fatal(err)
				}
			}
			for range 20 {
				select {
				case <-got:
				case <-ctx.Done():
					t.Fatal("events missing")
				}
			}
			st := s.e.Stats()
			mu.Lock()
			log := logs.String()
			mu.Unlock()
			switch mode {
			case IOUringOff:
				if st.SendPath != SendPathWrite || st.RingSends != 0 || s.e.SendPath() != SendPathWrite {
					t.Fatalf("off: path %q, %d ring sends", st.SendPath, st.RingSends)
				}
				if !strings.Contains(log, "send path: write(2)") {
					t.Fatalf("the choice is not logged: %s", log)
				}
			case IOUringOn:
				if st.SendPath != SendPathIOUring || st.RingSends == 0 {
					t.Fatalf("on: path %q, %d ring sends", st.SendPath, st.RingSends)
				}
				if !strings.Contains(log, "send path: io_uring") {
					t.Fatalf("the choice is not logged: %s", log)
				}
			}
		})
	}
}

// newTestLogger logs text lines at info level and above to w.
func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// lockedWriter serializes writes to a strings.Builder shared with the test.
type lockedWriter struct {
	w  *strings.Builder
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// blockIOUring installs a seccomp filter on every thread of the process
// that fails io_uring_setup, io_uring_enter and io_uring_register with
// EPERM, as Docker's default profile and systemd's SystemCallFilter= do.
func blockIOUring() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	ret := func(k uint32) unix.SockFilter { return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k} }
	const seccompRetErrno, seccompRetAllow = 0x00050000, 0x7fff0000
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_IO_URING_SETUP, Jt: 3},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_IO_URING_ENTER, Jt: 2},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_IO_URING_REGISTER, Jt: 1},
		ret(seccompRetAllow),
		ret(seccompRetErrno | uint32(unix.EPERM)),
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	const setModeFilter, flagTsync = 1, 1
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, setModeFilter, flagTsync, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return errno
	}
	return nil
}

// With io_uring blocked (a seccomp filter, in a child process), auto falls
// back to write(2) and says why, and on fails Start with a clear error.
func TestSendPathBlockedBySeccomp(t *testing.T) {
	if os.Getenv("EDGEWAMP_SECCOMP_CHILD") == "1" {
		seccompChild(t)
		return
	}
	needRing(t) // otherwise there is nothing to block
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSendPathBlockedBySeccomp$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "EDGEWAMP_SECCOMP_CHILD=1", "EDGEWAMP_TEST_IO_URING=")
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "SKIP") {
		t.Skipf("child skipped: %s", out)
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("child did not pass:\n%s", out)
	}
}

func seccompChild(t *testing.T) {
	if err := blockIOUring(); err != nil {
		t.Skipf("cannot install a seccomp filter here: %v", err)
	}
	err := uring.Probe()
	if err == nil || !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "seccomp") {
		t.Fatalf("Probe under seccomp: %v", err)
	}
	var logs strings.Builder
	var mu sync.Mutex
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.IOUring = IOUringAuto
		o.Logger = newTestLogger(&lockedWriter{w: &logs, mu: &mu})
	})
	if p := s.e.SendPath(); p != SendPathWrite {
		t.Fatalf("auto under seccomp: %q", p)
	}
	c := s.dial("rs", proto.JSON)
	registerEcho(t, c) // traffic flows on the fallback
	mu.Lock()
	log := logs.String()
	mu.Unlock()
	if !strings.Contains(log, "io_uring unavailable") || !strings.Contains(log, "operation not permitted") {
		t.Fatalf("the fallback is not logged with its reason: %s", log)
	}
	r, rerr := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 1})
	if rerr != nil {
		t.Fatal(rerr)
	}
	e, err := New(r, Options{Listeners: []Listener{{Addr: "127.0.0.1:0"}}, IOUring: IOUringOn, Logger: newTestLogger(&lockedWriter{w: &logs, mu: &mu})})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Start()
	if err == nil {
		e.Shutdown(context.Background())
		t.Fatal("Start with io_uring on succeeded under seccomp")
	}
	if !strings.Contains(err.Error(), "io_uring is required") || !strings.Contains(err.Error(), "seccomp") {
		t.Fatalf("unclear error: %v", err)
	}
	t.Logf("Start with io_uring on: %v", err)
}
