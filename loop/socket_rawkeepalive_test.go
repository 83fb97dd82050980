package loop

import (
	"bufio"
	"context"
	"crypto/tls"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// tcpOpts are the keepalive options of a socket.
type tcpOpts struct{ keepalive, idle, intvl, cnt, userTimeout int }

func tcpOptsOf(t testing.TB, fd int) tcpOpts {
	t.Helper()
	get := func(level, opt int) int {
		v, err := unix.GetsockoptInt(fd, level, opt)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return tcpOpts{
		keepalive:   get(unix.SOL_SOCKET, unix.SO_KEEPALIVE),
		idle:        get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE),
		intvl:       get(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL),
		cnt:         get(unix.IPPROTO_TCP, unix.TCP_KEEPCNT),
		userTimeout: get(unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT),
	}
}

// The router's end of a RawSocket connection, plaintext or TLS, carries
// the keepalive's schedule (rawkeepalive.go): TCP keepalive from the ping
// interval, three probes in the ping timeout, and TCP_USER_TIMEOUT, the
// two together; an interval past the kernel's bound takes the bound, not
// the kernel's default. A WebSocket one is pinged and has none of it.
func TestSocketRawKeepaliveSockopts(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	for _, tc := range []struct {
		interval, timeout time.Duration
		want              tcpOpts
	}{
		{30 * time.Second, 10 * time.Second, tcpOpts{1, 30, 4, 3, 40000}},
		{time.Second, time.Second, tcpOpts{1, 1, 1, 3, 2000}},
		{10 * time.Hour, 10 * time.Second, tcpOpts{1, 32767, 4, 3, 36010000}},
	} {
		s := tlsServer(t, cert, true, func(o *Options, _ *route.Config) {
			o.PingInterval, o.PingTimeout = tc.interval, tc.timeout
		})
		tlsAddr, plainAddr := s.e.Addrs()[0].String(), s.e.Addrs()[1].String()
		r := dialRS(t, plainAddr, proto.JSON, 15)
		if got := tcpOptsOf(t, routerFd(t, r.c)); got != tc.want {
			t.Errorf("%v/%v rs: %+v, want %+v", tc.interval, tc.timeout, got, tc.want)
		}
		raw := dialTCP(t, tlsAddr, 0)
		cfg := cert.client.Clone()
		cfg.ServerName = "127.0.0.1"
		tc2 := tls.Client(raw, cfg)
		tc2.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := tc2.Write(rsHandshake(proto.JSON, 15)); err != nil {
			t.Fatal(err)
		}
		var reply [4]byte
		if _, err := tc2.Read(reply[:]); err != nil || reply[0] != 0x7f {
			t.Fatalf("rss handshake: % x %v", reply, err)
		}
		if got := tcpOptsOf(t, routerFd(t, raw)); got != tc.want {
			t.Errorf("%v/%v rss: %+v, want %+v", tc.interval, tc.timeout, got, tc.want)
		}
		w := dialWS(t, plainAddr, proto.JSON)
		if got := tcpOptsOf(t, routerFd(t, w.c)); got.keepalive != 0 || got.userTimeout != 0 {
			t.Errorf("ws: %+v", got)
		}
	}
}

// A RawSocket subscriber that never sent a PING (so gets none:
// rawkeepalive.go) and stops reading, its process frozen while its kernel
// answers, is closed about when an unanswered PING closed it: the kernel's
// TCP_USER_TIMEOUT ends it once its output has waited behind its closed
// window for the ping interval and timeout. Before, nothing did: TCP
// keepalive sends no probe while output waits, the events past high_water
// were dropped, and it was held for ever, with megabytes queued for it.
func TestSocketRawKeepaliveStalledReader(t *testing.T) {
	t.Parallel()
	if !kernelAtLeast(t, 5, 11) {
		t.Skip("TCP_USER_TIMEOUT does not bound a closed window before Linux 5.11")
	}
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.PingInterval, o.PingTimeout = time.Second, time.Second
	})
	c := dialTCP(t, s.url, 16<<10)
	r := &rsClient{t: t, c: c, br: bufio.NewReaderSize(c, 4<<10), ser: proto.JSON, autoPong: true}
	r.write(rsHandshake(proto.JSON, 15))
	r.expectHandshake()
	p := newWAMP(t, r, proto.JSON)
	p.join()
	p.subscribe("com.flood")
	// From here on the subscriber reads nothing and sends nothing.
	pub := s.dial("rs", proto.JSON)
	arg := []any{strings.Repeat("x", 8<<10)}
	deadline := time.Now().Add(20 * time.Second)
	for s.openAt(c) {
		if time.Now().After(deadline) {
			t.Fatal("a subscriber that stopped reading, never pinged, is still held after 20 s (1 s interval, 1 s timeout)")
		}
		for range 8 { // 64 KiB of events, then look again
			if err := pub.Publish(context.Background(), "com.flood", arg, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, ioTimeout, "the close counted as a keepalive timeout", func() bool {
		return s.e.Stats().Closes[CloseKeepalive] == 1
	})
}

// kernelAtLeast reports whether the running Linux kernel is at least
// major.minor.
func kernelAtLeast(t testing.TB, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, _ := strconv.Atoi(parts[0])
	mnr, _ := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return maj > major || maj == major && mnr >= minor
}
