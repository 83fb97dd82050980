package loop

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// loopConns returns the connections open on each loop, counted on the
// loops.
func (e *Engine) loopConns(t testing.TB) []int {
	t.Helper()
	lss := e.allLoops()
	out := make([]int, len(lss))
	var wg sync.WaitGroup
	for i, ls := range lss {
		wg.Add(1)
		if err := ls.Execute(func() { out[i] = len(ls.conns); wg.Done() }); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	return out
}

// The acceptors spread connections over the loops (pickLoop): 32 idle ones
// over two loops, 16 each give or take the picks that raced an OnOpen.
func TestAcceptSpreadsOverLoops(t *testing.T) {
	s := startServer(t, nil) // two loops
	const n = 32
	for range n {
		dialTCP(t, s.url, 0) // idle: they wait in the detect phase
	}
	per := s.e.waitLoopConns(t, n)
	t.Logf("%d connections over 2 loops: %v", n, per)
	if d := per[0] - per[1]; d > 4 || d < -4 {
		t.Fatalf("connections per loop %v: not spread", per)
	}
	// Every opened connection left the pending counts, once: OnOpen lowers
	// them, the acceptor only for a connection gnet never opened.
	eventually(t, ioTimeout, "no enrollment pending", func() bool {
		for _, ls := range s.e.allLoops() {
			if p := ls.pending.Load(); p != 0 {
				if p < 0 {
					t.Fatalf("pending %d on a loop: counted down twice", p)
				}
				return false
			}
		}
		return true
	})
}

// A burst enrolled while both loops are busy (nothing opened yet) is still
// spread: the picks count the enrollments in flight. gnet's own
// least-connections balancing, which counts opened connections only, sent
// all 32 to the first loop (the CI failure of 2026-12-02).
func TestAcceptSpreadsWhileLoopsBusy(t *testing.T) {
	s := startServer(t, nil) // two loops
	release := make(chan struct{})
	var busy sync.WaitGroup
	for _, ls := range s.e.allLoops() {
		busy.Add(1)
		if err := ls.Execute(func() { busy.Done(); <-release }); err != nil {
			t.Fatal(err)
		}
	}
	busy.Wait()
	const n = 32
	for range n {
		dialTCP(t, s.url, 0)
	}
	eventually(t, ioTimeout, "every connection enrolled", func() bool {
		sum := int32(0)
		for _, ls := range s.e.allLoops() {
			sum += ls.pending.Load()
		}
		return sum == n
	})
	close(release)
	per := s.e.waitLoopConns(t, n)
	t.Logf("%d connections enrolled to 2 busy loops: %v", n, per)
	if per[0] != n/2 || per[1] != n/2 {
		t.Fatalf("connections per loop %v, want %d each", per, n/2)
	}
}

// waitLoopConns waits until the loops hold n connections between them and
// returns each loop's count.
func (e *Engine) waitLoopConns(t *testing.T, n int) []int {
	t.Helper()
	var per []int
	eventually(t, ioTimeout, "every connection on a loop", func() bool {
		per = e.loopConns(t)
		sum := 0
		for _, k := range per {
			sum += k
		}
		return sum == n
	})
	return per
}

// Listeners as gnet bound them: an IPv4 address on IPv4 only, an IPv6 one
// on IPv6 only, an empty host on both; several on host:0, each with its own
// port and its own transport; Addrs reports the ports bound.
func TestListenerAddresses(t *testing.T) {
	v6 := true
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		v6 = false
	} else {
		l.Close()
	}
	lns := []Listener{
		{Addr: "127.0.0.1:0", Transport: WebSocketOnly},
		{Addr: "127.0.0.1:0", Transport: RawSocketOnly},
		{Addr: "0.0.0.0:0"},
	}
	if v6 {
		lns = append(lns, Listener{Addr: "[::1]:0"}, Listener{Addr: ":0"})
	}
	s := startServer(t, func(o *Options, _ *route.Config) { o.Listeners = lns })
	addrs := s.e.Addrs()
	port := func(i int) string {
		_, p, _ := net.SplitHostPort(addrs[i].String())
		if p == "0" || p == "" {
			t.Fatalf("listener %d: address %v", i, addrs[i])
		}
		return p
	}
	if addrs[0].String() == addrs[1].String() {
		t.Fatalf("two listeners on 127.0.0.1:0 share %v", addrs[0])
	}
	// Each host:0 listener serves its own transport.
	dialWS(t, addrs[0].String(), proto.JSON)
	dialRS(t, addrs[1].String(), proto.MsgPack, 15)
	wrong := dialTCP(t, addrs[0].String(), 0)
	wrong.Write(rsHandshake(proto.MsgPack, 15))
	waitClosed(t, wrong, ioTimeout)
	wrong = dialTCP(t, addrs[1].String(), 0)
	wrong.Write(wsUpgradeRequest("/ws", proto.JSON.Subprotocol(false)))
	waitClosed(t, wrong, ioTimeout)

	dialRS(t, net.JoinHostPort("127.0.0.1", port(2)), proto.JSON, 15)
	if !v6 {
		t.Log("no IPv6 loopback: IPv6 listeners not tested")
		return
	}
	if c, err := net.DialTimeout("tcp6", net.JoinHostPort("::1", port(2)), time.Second); err == nil {
		c.Close()
		t.Errorf("0.0.0.0 listener reachable over IPv6")
	}
	dialRS(t, net.JoinHostPort("::1", port(3)), proto.JSON, 15)
	if c, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", port(3)), time.Second); err == nil {
		c.Close()
		t.Errorf("[::1] listener reachable over IPv4")
	}
	dialRS(t, net.JoinHostPort("::1", port(4)), proto.JSON, 15)
	dialRS(t, net.JoinHostPort("127.0.0.1", port(4)), proto.JSON, 15)
}

// Start fails at once, saying which, when a listener's address is taken,
// and leaves no listener bound.
func TestStartAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	free := "127.0.0.1:0"
	e, err := New(r, Options{Listeners: []Listener{{Addr: free}, {Addr: taken.Addr().String()}}})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Start()
	if err == nil {
		e.Shutdown(context.Background())
		t.Fatal("Start succeeded on an address in use")
	}
	t.Log(err)
	if first := e.Addrs()[0]; first != nil {
		if c, err := net.DialTimeout("tcp", first.String(), time.Second); err == nil {
			c.Close()
			t.Errorf("the first listener (%v) is still bound after Start failed", first)
		}
	}
}

// TestShutdownWithoutLoops: Shutdown of an engine whose loops never ran
// (never started, or Start failed on a taken address) returns at once.
// Before, it waited 10 s for loops that never ran (and said they did not
// stop): an embedder that shut down after a failed Start paid 10 s.
func TestShutdownWithoutLoops(t *testing.T) {
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, start := range []bool{false, true} {
		r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 1})
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(r, Options{Listeners: []Listener{{Addr: taken.Addr().String()}}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if start && e.Start() == nil {
			t.Fatal("Start succeeded on an address in use")
		}
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err = e.Shutdown(ctx)
		cancel()
		if d := time.Since(t0); err != nil || d > 3*time.Second {
			t.Fatalf("Shutdown of an engine whose loops never ran (Start called: %v): %v after %v", start, err, d.Round(time.Millisecond))
		}
	}
}

// Shutdown stops accepting first: a connect after it is refused by the
// kernel, not accepted and closed.
func TestShutdownClosesListeners(t *testing.T) {
	s := startServer(t, nil)
	h := newHealthy(s)
	h.check()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", s.url, time.Second); err == nil {
		c.Close()
		t.Fatal("connected after Shutdown")
	}
	if held, _, _ := s.e.FDs(); held != 0 {
		t.Fatalf("%d descriptors counted after Shutdown", held)
	}
}

// Datagrams a local process sends to gnet's placeholder listener are
// dropped and harm no one.
func TestPlaceholderDatagrams(t *testing.T) {
	s := startServer(t, nil)
	h := newHealthy(s)
	fd, err := s.e.eng.DupListener("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*unix.SockaddrInet4).Port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 1000 {
		c.Write([]byte{0x7f, byte(i), 0, 0, 'G', 'E', 'T', ' '})
	}
	// The dup shares the socket: its receive queue empties as gnet reads.
	eventually(t, ioTimeout, "the loop read the datagrams", func() bool {
		n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
		return err == nil && n == 0
	})
	h.check()
	if held, _, _ := s.e.FDs(); held != 2 {
		t.Fatalf("%d descriptors counted for 2 sessions", held)
	}
	if n := s.e.loopConns(t); n[0]+n[1] != 2 {
		t.Fatalf("connections on the loops: %v, want 2", n)
	}
}

// BenchmarkConnSetup is the cost of a connection's setup: TCP connect,
// RawSocket handshake and its reply, close (with RST, so that no TIME_WAIT
// piles up), from 8 clients per core in this process.
func BenchmarkConnSetup(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 2, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(r, Options{Listeners: []Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		b.StopTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	}()
	addr := e.Addrs()[0].String()
	hs := rsHandshake(proto.JSON, 15)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var reply [4]byte
		for pb.Next() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			c.Write(hs)
			if _, err := io.ReadFull(c, reply[:]); err != nil {
				b.Error(err)
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	})
}
