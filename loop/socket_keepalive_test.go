package loop

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// The deadline tests drive the engine's clock (Options.Now) by hand and
// run the deadline scan themselves (scanNow), so that what they assert —
// a ping after PingInterval of silence, a close PingTimeout later, none
// while the peer answers — does not depend on how fast a loaded machine
// schedules the test's goroutines. (On the wall clock with 1 s intervals,
// TestSocketKeepalive failed about once in ten runs on a loaded machine: a
// client goroutine that answered a ping late was closed.)

// fakeClock is a clock that moves only when told. Safe for concurrent
// use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// scanNow makes the engine read its clock and runs the deadline scan on
// every loop, waiting for it (and its flush) to finish.
func (e *Engine) scanNow(t testing.TB) {
	t.Helper()
	e.clock.Store(e.readClock())
	var wg sync.WaitGroup
	for _, ls := range e.allLoops() {
		wg.Add(1)
		if ls.Execute(func() { ls.scan(); wg.Done() }) != nil {
			wg.Done()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(ioTimeout):
		t.Fatal("loops did not run the scan")
	}
}

// tick advances the clock by d and runs the scan.
func (s *testServer) tick(clk *fakeClock, d time.Duration) {
	s.t.Helper()
	clk.Advance(d)
	s.e.scanNow(s.t)
}

const (
	kaInterval = 30 * time.Second
	kaTimeout  = 10 * time.Second
)

// keepaliveServer pings after kaInterval of silence (on its fake clock)
// and gives up kaTimeout later.
func keepaliveServer(t *testing.T, idle time.Duration) (*testServer, *fakeClock) {
	clk := newFakeClock()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.PingInterval = kaInterval
		o.PingTimeout = kaTimeout
		o.IdleTimeout = idle
		o.Now = clk.Now
	})
	return s, clk
}

// openAt reports whether the router still holds the connection of c.
func (s *testServer) openAt(c net.Conn) bool {
	_, ok := s.e.statOf(s.t, c)
	return ok
}

// pingOutstanding reports whether the router waits for an answer to a
// ping on c.
func (s *testServer) pingOutstanding(c net.Conn) bool {
	st, ok := s.e.statOf(s.t, c)
	return ok && st.pingSent
}

// waitPongs waits until every connection but skip has answered the
// router's ping.
func (s *testServer) waitPongs(skip net.Conn) {
	s.t.Helper()
	eventually(s.t, ioTimeout, "pongs from the well-behaved peers", func() bool {
		for _, st := range s.e.connStats(s.t) {
			if st.pingSent && st.remote != skip.LocalAddr().String() {
				return false
			}
		}
		return true
	})
}

// takesPings makes a RawSocket peer show the router that it takes
// RawSocket PINGs (rawkeepalive.go): it sends one and reads the PONG. A
// WebSocket peer is pinged anyway.
func takesPings(t *testing.T, p *rawPeer) {
	t.Helper()
	r, ok := p.mc.(*rsClient)
	if !ok {
		return
	}
	r.write(rsFrame(1, []byte("hi")))
	if typ, payload, err := r.readFrame(ioTimeout); err != nil || typ != 2 || string(payload) != "hi" {
		t.Fatalf("the PONG to our PING: type %d %q %v", typ, payload, err)
	}
}

// A RawSocket peer that has not shown that it takes PINGs (rawkeepalive.go:
// Autobahn|Python's asyncio client drops its connection at one) gets none
// however long it is silent, and is not closed for it: the kernel's TCP
// keepalive watches it. Once it has sent a PING, it gets the keepalive's.
func TestSocketKeepaliveRawSocketUnproven(t *testing.T) {
	t.Parallel()
	s, clk := keepaliveServer(t, 0)
	p := dialRaw(t, s.url, "rs", proto.JSON)
	newWAMP(t, p.mc, proto.JSON).join()
	s.tick(clk, kaInterval+time.Second)
	s.tick(clk, kaTimeout+time.Second)
	if s.pingOutstanding(p.c) {
		t.Fatal("a PING to a peer not known to take them")
	}
	if _, err := p.mc.readMsg(200 * time.Millisecond); !isTimeout(err) {
		t.Fatalf("read: %v", err)
	}
	if n := p.mc.(*rsClient).pings; n != 0 {
		t.Fatalf("%d PINGs received", n)
	}
	if !s.openAt(p.c) {
		t.Fatal("closed for a PING it was not sent")
	}
	takesPings(t, p)
	s.tick(clk, kaInterval+time.Second)
	if !s.pingOutstanding(p.c) {
		t.Fatal("no PING once the peer has sent one")
	}
}

// With Options.RawSocketPings (keepalive.rawsocket_pings: always) a
// RawSocket peer that never pinged is pinged as a WebSocket one is, and
// closed when it does not answer: a frozen client with nothing waiting
// for it, which the kernel's keepalive does not find, is found.
func TestSocketKeepaliveRawSocketPingsAlways(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.PingInterval = kaInterval
		o.PingTimeout = kaTimeout
		o.RawSocketPings = true
		o.Now = clk.Now
	})
	p := dialRaw(t, s.url, "rs", proto.JSON)
	newWAMP(t, p.mc, proto.JSON).join()
	s.tick(clk, kaInterval+time.Second)
	if !s.pingOutstanding(p.c) {
		t.Fatal("no PING to a RawSocket peer that never pinged, with RawSocketPings")
	}
	s.tick(clk, kaTimeout+time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for s.openAt(p.c) {
		if time.Now().After(deadline) {
			t.Fatal("a RawSocket peer that did not answer its PING is still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A peer that answers every ping stays, ping after ping.
func TestSocketKeepaliveAnswered(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"ws", "rs"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			s, clk := keepaliveServer(t, 0)
			p := dialRaw(t, s.url, transport, proto.JSON)
			w := newWAMP(t, p.mc, proto.JSON)
			w.join()
			takesPings(t, p)
			for i := range 3 {
				s.tick(clk, kaInterval+time.Second) // silent for longer than the interval: a ping
				if !s.pingOutstanding(p.c) {
					t.Fatalf("cycle %d: no ping after %v of silence", i, kaInterval)
				}
				// readMsg answers the ping and waits for a message that
				// does not come.
				if _, err := p.mc.readMsg(200 * time.Millisecond); !isTimeout(err) {
					t.Fatalf("cycle %d: %v", i, err)
				}
				eventually(t, ioTimeout, "the pong to reach the router", func() bool { return !s.pingOutstanding(p.c) })
				s.tick(clk, kaTimeout+time.Second) // past the ping timeout: answered, so nothing happens
				if !s.openAt(p.c) {
					t.Fatalf("cycle %d: closed although the ping was answered", i)
				}
			}
			if m := w.call("wamp.session.count", nil); m.Type != proto.CodeResult {
				t.Fatalf("after three pings: %v", m.Type)
			}
		})
	}
}

// Keepalive pings borrow no pooled buffer from a quiet loop. Sessions that
// joined together go idle together, and the scan pings them all in one
// round; with the pool trimmed empty by then, each ping used to get a new
// 2 KiB output buffer, which the flush pooled and the next trims dropped:
// 10 MB of garbage every PingInterval for 5,000 idle sessions. Now the
// round's pings leave the pool as empty as they found it, and every peer
// still gets its ping and is kept once it answers.
func TestSocketKeepalivePingsBorrowNoBuffer(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"ws", "rs"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			s, clk := keepaliveServer(t, 0)
			const n = 40
			peers := make([]*rawPeer, n)
			for i := range peers {
				peers[i] = dialRaw(t, s.url, transport, proto.JSON)
				newWAMP(t, peers[i].mc, proto.JSON).join()
				takesPings(t, peers[i])
			}
			for range 3 { // quiet seconds: the trims empty the pool
				s.tick(clk, time.Second)
			}
			if b, k := s.e.outPool(t); b != 0 {
				t.Fatalf("the pool holds %d buffers (%d bytes) after quiet seconds", k, b)
			}
			s.tick(clk, kaInterval) // every session silent past the interval: the ping round
			for i, p := range peers {
				if !s.pingOutstanding(p.c) {
					t.Fatalf("peer %d: no ping", i)
				}
			}
			if b, k := s.e.outPool(t); b != 0 {
				t.Fatalf("the ping round left %d buffers (%d bytes) in the pool: %d B for each of %d pings", k, b, b/int64(n), n)
			}
			for i, p := range peers { // readMsg answers the ping
				if _, err := p.mc.readMsg(100 * time.Millisecond); !isTimeout(err) {
					t.Fatalf("peer %d: %v", i, err)
				}
			}
			eventually(t, ioTimeout, "every pong", func() bool {
				for _, p := range peers {
					if s.pingOutstanding(p.c) {
						return false
					}
				}
				return true
			})
			s.tick(clk, kaTimeout+time.Second)
			for i, p := range peers {
				if !s.openAt(p.c) {
					t.Fatalf("peer %d closed although it answered", i)
				}
			}
		})
	}
}

// outPool returns the bytes and the number of output buffers the loops
// keep pooled.
func (e *Engine) outPool(t testing.TB) (bytes int64, bufs int) {
	t.Helper()
	var b, k atomic.Int64
	var wg sync.WaitGroup
	for _, ls := range e.allLoops() {
		wg.Add(1)
		if ls.Execute(func() {
			b.Add(int64(ls.pooled))
			k.Add(int64(len(ls.pool)))
			wg.Done()
		}) != nil {
			wg.Done()
		}
	}
	wg.Wait()
	return b.Load(), int(k.Load())
}

// A peer that does not answer — it does not read, or reads and does not
// pong, before or after HELLO — is closed PingTimeout after the ping, not
// before; a well-behaved session is not.
func TestSocketKeepalive(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		transport string
		hello     bool
		reads     bool
	}{
		{"ws-never-reads", "ws", true, false},
		{"ws-reads-never-pongs", "ws", true, true},
		{"rs-never-reads", "rs", true, false},
		{"rs-reads-never-pongs", "rs", true, true},
		{"before-hello", "rs", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, clk := keepaliveServer(t, 0)
			h := newHealthy(s) // the client package answers pings
			p := dialRaw(t, s.url, tc.transport, proto.MsgPack)
			if tc.hello {
				newWAMP(t, p.mc, proto.MsgPack).join()
			}
			takesPings(t, p)
			switch c := p.mc.(type) {
			case *wsClient:
				c.autoPong = false
			case *rsClient:
				c.autoPong = false
			}
			s.tick(clk, kaInterval-time.Second)
			if s.pingOutstanding(p.c) {
				t.Fatal("pinged before the interval")
			}
			s.tick(clk, 2*time.Second)
			if !s.pingOutstanding(p.c) {
				t.Fatal("no ping after the interval")
			}
			if tc.reads {
				if _, err := p.mc.readMsg(500 * time.Millisecond); !isTimeout(err) {
					t.Fatalf("reading the ping: %v", err)
				}
				pings := 0
				switch c := p.mc.(type) {
				case *wsClient:
					pings = c.pings
				case *rsClient:
					pings = c.pings
				}
				if pings != 1 {
					t.Fatalf("%d pings read, want 1", pings)
				}
			}
			s.tick(clk, kaTimeout-time.Second)
			if !s.openAt(p.c) {
				t.Fatal("closed before the ping timeout")
			}
			// The healthy pair answers its pings: it must survive.
			h.check()
			s.waitPongs(p.c)
			s.tick(clk, 2*time.Second)
			eventually(t, ioTimeout, "the router to close the connection", func() bool { return !s.openAt(p.c) })
			if n := s.e.Stats().Closes[CloseKeepalive]; n != 1 {
				t.Fatalf("%d keepalive closes, want 1", n)
			}
			h.check()
		})
	}
}

// Pongs (heartbeats) and pings from the client are traffic too: no ping
// goes to a peer that keeps sending them.
func TestSocketKeepaliveUnsolicitedPongs(t *testing.T) {
	t.Parallel()
	s, clk := keepaliveServer(t, 0)
	w := dialWS(t, s.url, proto.JSON)
	p := newWAMP(t, w, proto.JSON)
	p.join()
	w.autoPong = false
	for i := range 5 {
		w.write(cliFrame(true, opPong, []byte("hb")))
		// The router has read the pong once it answers a call.
		if m := p.call("wamp.session.count", nil); m.Type != proto.CodeResult {
			t.Fatalf("heartbeat %d: %v", i, m.Type)
		}
		s.tick(clk, kaInterval-5*time.Second)
		if s.pingOutstanding(w.c) {
			t.Fatalf("heartbeat %d: pinged a peer that is not silent", i)
		}
	}
}

// IdleTimeout closes a connection with no inbound traffic at all, even if
// it is written to; answering pings counts as traffic.
func TestSocketIdleTimeout(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.PingInterval = -1
		o.IdleTimeout = time.Minute
		o.Now = clk.Now
	})
	w := dialWS(t, s.url, proto.JSON)
	newWAMP(t, w, proto.JSON).join()
	s.tick(clk, time.Minute-time.Second)
	if !s.openAt(w.c) {
		t.Fatal("closed before the idle timeout")
	}
	s.tick(clk, 2*time.Second)
	_, err := w.readMsg(ioTimeout)
	if !isClosedErr(err) {
		t.Fatalf("want the connection closed, got %v", err)
	}
	if n := s.e.Stats().Closes[CloseIdle]; n != 1 {
		t.Fatalf("%d idle closes, want 1", n)
	}
	newHealthy(s)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
