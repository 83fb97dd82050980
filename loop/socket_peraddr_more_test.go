package loop

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// Review of the per-address connection bound (peraddr.go).

// An IPv4 client of a dual-stack listener (its address seen as
// ::ffff:127.0.0.1) counts with its IPv4 address; ::1 apart.
func TestConnsPerAddressDualStackMapped(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.Listeners = []Listener{{Addr: ":0"}}
		o.MaxConnsPerAddress = 2
		o.Logger = slog.New(slog.NewTextHandler(nopWriter{}, nil))
	})
	_, port, _ := net.SplitHostPort(s.url)
	v4 := "127.0.0.1:" + port
	dialFrom(t, "127.0.0.1", v4)
	dialFrom(t, "127.0.0.1", v4)
	eventually(t, ioTimeout, "2 counted for 127.0.0.1", func() bool {
		n, _, _ := s.e.addrCount("127.0.0.1")
		return n == 2
	})
	if closed, _ := closedWithin(dialFrom(t, "127.0.0.1", v4), 2*time.Second); !closed {
		t.Fatal("third IPv4 connection (mapped) not refused")
	}
	d := net.Dialer{Timeout: ioTimeout}
	c, err := d.Dial("tcp", "[::1]:"+port)
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer c.Close()
	if closed, _ := closedWithin(c, time.Second); closed {
		t.Fatal("::1 refused")
	}
	if n, total, _ := s.e.addrCount("127.0.0.1"); n != 2 || total != 3 {
		t.Fatalf("127.0.0.1 %d, all %d; want 2, 3", n, total)
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// The table is made anew after a flood from many sources, and the counts
// of the sources left survive it.
func TestAddrConnsShrinkKeepsCounts(t *testing.T) {
	a := &addrConns{max: 3}
	src := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	const n = 20000
	for i := range n {
		if !a.take(src(i)) {
			t.Fatal("refused")
		}
	}
	a.take(src(7))
	a.take(src(7))
	if a.take(src(7)) {
		t.Fatal("a fourth from one source")
	}
	for i := range n {
		if i != 7 {
			a.release(src(i))
		}
	}
	if k, total := a.open(src(7)); k != 3 || total != 3 || a.bad != 0 || len(a.n) != 1 {
		t.Fatalf("src7 %d, total %d, bad %d, len %d", k, total, a.bad, len(a.n))
	}
}

// Connections arriving while the engine shuts down leave no count.
func TestConnsPerAddressShutdownUnderFlood(t *testing.T) {
	t.Parallel()
	for round := range 3 {
		s := startServer(t, func(o *Options, rc *route.Config) {
			o.MaxConnsPerAddress = 64
			o.Logger = slog.New(slog.NewTextHandler(nopWriter{}, nil))
			rc.Realms[0].Anonymous = true
		})
		stop := make(chan struct{})
		done := make(chan struct{})
		var held []net.Conn
		var mu = make(chan struct{}, 1)
		mu <- struct{}{}
		for w := range 8 {
			go func() {
				defer func() { done <- struct{}{} }()
				src := fmt.Sprintf("127.0.0.%d", 1+w%3)
				d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					c, err := d.Dial("tcp", s.url)
					if err != nil {
						continue
					}
					if i%2 == 0 {
						<-mu
						held = append(held, c)
						mu <- struct{}{}
					} else {
						c.Write(rsHandshake(1, 15))
						c.Close()
					}
				}
			}()
		}
		time.Sleep(time.Duration(50+round*50) * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.e.Shutdown(ctx)
		cancel()
		close(stop)
		for range 8 {
			<-done
		}
		for _, c := range held {
			c.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, total, bad := s.e.addrCount("127.0.0.1"); total != 0 || bad != 0 {
			t.Fatalf("round %d: after shutdown %d counted, %d bad", round, total, bad)
		}
	}
}

// collidingPair returns two loopback addresses whose refusals share one
// set of the engine's connections_per_address log limiter (a refusal
// from 127.0.0.1 must have been logged first: the seed exists from then).
func collidingPair(t *testing.T, e *Engine) (string, string) {
	t.Helper()
	e.addrLogs.mu.Lock()
	defer e.addrLogs.mu.Unlock()
	slot := func(x string) int { return e.addrLogs.setOf(netip.MustParseAddr(x)) }
	a := "127.0.0.1"
	for i := 2; i < 4096; i++ {
		x := fmt.Sprintf("127.0.%d.%d", i/256, i%256)
		if slot(x) == slot(a) {
			return a, x
		}
	}
	t.Skip("no colliding address found")
	return "", ""
}

// The per-address log limiter exists so that one client refused hundreds
// of times a second does not take the close log's 20 lines a second from
// every other connection (close.go, srcLogEvery). Two refused addresses
// that share a slot (an attacker with a few dozen addresses, or an IPv6
// /56 of /64s, always has such pairs) alternate and are logged at every
// refusal: the close log's 20 a second go to them, and another client's
// abnormal close (a refused RawSocket handshake from 127.0.0.200) is not
// logged at all.
func TestConnsPerAddressCollidingPairTakesCloseLog(t *testing.T) {
	t.Parallel()
	logs := &logLines{}
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.MaxConnsPerAddress = 1
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	dialFrom(t, "127.0.0.1", s.url)
	eventually(t, ioTimeout, "127.0.0.1 counted", func() bool { n, _, _ := s.e.addrCount("127.0.0.1"); return n == 1 })
	closedWithin(dialFrom(t, "127.0.0.1", s.url), 3*time.Second) // seeds the limiter
	a, b := collidingPair(t, s.e)
	dialFrom(t, b, s.url)
	eventually(t, ioTimeout, "b counted", func() bool { n, _, _ := s.e.addrCount(b); return n == 1 })

	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			src := a
			if i%2 == 1 {
				src = b
			}
			d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err := d.Dial("tcp", s.url)
			if err != nil {
				continue
			}
			closedWithin(c, time.Second)
			c.Close()
			n++
		}
	}()
	time.Sleep(1200 * time.Millisecond) // into the flood's second second
	victim := dialFrom(t, "127.0.0.200", s.url)
	victim.Write([]byte{0x7F, 0xF0, 0, 0}) // serializer 0: handshake_refused, logged at info
	closedWithin(victim, 3*time.Second)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	refusals := <-done
	la := logs.count(`"remote":"` + a + `:`)
	lb := logs.count(`"remote":"` + b + `:`)
	lv := logs.count(`"remote":"127.0.0.200:`)
	t.Logf("pair %s/%s refused %d times in ~1.5 s: %d and %d lines (README: 1 each per 5 s); victim's lines %d", a, b, refusals, la, lb, lv)
	if lv == 0 || la > 1 || lb > 1 {
		t.Errorf("victim's abnormal close logged %d times (want 1); %d lines for %s and %d for %s within 1.5 s (want at most 1 each)", lv, la, a, lb, b)
	}
}
