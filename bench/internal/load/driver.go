package load

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Two drivers run sessions: an event loop (gnet's client: one goroutine per
// loop, epoll, every session's input handled in the loop and its output
// written once per callback) and a goroutine per session with blocking
// reads and writes. The event loop is the default for every scenario that
// holds many sessions or wants its CPU; the goroutine driver is kept for
// rpc (-driver goroutine) so the two can be compared, and runs the short
// sessions of churn and authstorm.

var base = time.Now()

// loops is an event-loop driver: gnet's client (loopClient) or the tool's
// own io_uring loops (uringClient, -driver uring).
type loops interface {
	// add hands a connected socket to a loop; s starts its handshake at
	// once. Safe for concurrent use.
	add(c net.Conn, s *sess) error
	// stop closes every session's connection and stops the loops.
	stop()
}

// newLoops starts the event-loop driver cfg.Driver names.
func newLoops(cfg *Config) (loops, error) {
	switch cfg.Driver {
	case "gnet":
		return newLoopClient(cfg.Loops)
	case "uring":
		return newURingClient(cfg.Loops, cfg.Spin, cfg.logf)
	}
	return nil, fmt.Errorf("unknown driver %q for %s (want gnet or uring; rpc also goroutine)", cfg.Driver, cfg.Scenario)
}

// outbound returns the session's output its socket has not taken yet.
func (s *sess) outbound() int {
	switch {
	case s.gc != nil:
		return s.gc.OutboundBuffered()
	case s.uc != nil:
		return len(s.uc.out)
	}
	return 0
}

// nowNS is the tool's monotonic clock: nanoseconds since start.
func nowNS() int64 { return int64(time.Since(base)) }

// loopClient runs sessions on gnet client event loops.
type loopClient struct {
	gnet.BuiltinEventEngine
	cli *gnet.Client
}

func newLoopClient(loops int) (*loopClient, error) {
	lc := &loopClient{}
	opts := []gnet.Option{
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithReadBufferCap(64 << 10),
		gnet.WithWriteBufferCap(16 << 10),
		gnet.WithLogger(quietLogger{}),
	}
	if loops > 0 {
		opts = append(opts, gnet.WithNumEventLoop(loops))
	}
	cli, err := gnet.NewClient(lc, opts...)
	if err != nil {
		return nil, err
	}
	if err := cli.Start(); err != nil {
		return nil, err
	}
	lc.cli = cli
	return lc, nil
}

// add hands a connected socket to the loops; s starts its handshake at
// once. Safe for concurrent use; it blocks until the loop took the socket.
func (lc *loopClient) add(c net.Conn, s *sess) error {
	_, err := lc.cli.EnrollContext(c, s)
	return err
}

// stop closes every session's connection and stops the loops.
func (lc *loopClient) stop() { lc.cli.Stop() }

func (lc *loopClient) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	s := c.Context().(*sess)
	s.gc = c
	s.start()
	if s.tls != nil {
		s.tls.gc = c
		s.flushTLS()
		return nil, gnet.None
	}
	out := s.out
	s.out = s.out[len(s.out):]
	return out, gnet.None
}

func (lc *loopClient) OnTraffic(c gnet.Conn) gnet.Action {
	s := c.Context().(*sess)
	now := nowNS()
	if s.tls != nil {
		s.tlsInput(now)
	} else if buf, _ := c.Peek(-1); len(buf) > 0 {
		if n := s.input(buf, now); n > 0 { // gnet's Discard(0) would drop everything buffered
			c.Discard(n)
		}
	}
	if w, ok := s.r.(waker); ok && s.st == stOpen {
		w.wake(s, now)
	}
	if s.tls != nil {
		s.flushTLS()
	} else if len(s.out) > 0 {
		c.Write(s.out)
		s.out = s.out[:0]
	}
	if s.st == stDone {
		return gnet.Close
	}
	return gnet.None
}

func (lc *loopClient) OnClose(c gnet.Conn, err error) gnet.Action {
	if s, ok := c.Context().(*sess); ok {
		s.closed(err)
	}
	return gnet.None
}

// runBlocking drives s on the calling goroutine over c until the session
// ends or the deadline passes. With start non-nil, a waker role is woken
// once after joining, when start is closed. A TLS endpoint's handshake
// runs on the first write, within the deadline.
func runBlocking(c net.Conn, s *sess, deadline time.Time, start <-chan struct{}) {
	if s.ep.tls != nil {
		c = tls.Client(c, s.ep.tls)
	}
	defer c.Close()
	if !deadline.IsZero() {
		c.SetDeadline(deadline)
	}
	s.start()
	buf := make([]byte, 0, 16<<10)
	woke := start == nil
	for s.st != stDone {
		if len(s.out) > 0 {
			if _, err := c.Write(s.out); err != nil {
				s.closed(err)
				return
			}
			s.out = s.out[:0]
		}
		if !woke && s.st == stOpen {
			woke = true
			<-start
			if w, ok := s.r.(waker); ok {
				w.wake(s, nowNS())
			}
			continue
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		if err != nil {
			s.closed(err)
			return
		}
		buf = buf[:len(buf)+n]
		used := s.input(buf, nowNS())
		buf = buf[:copy(buf, buf[used:])]
	}
	if len(s.out) > 0 {
		c.Write(s.out)
	}
	s.closed(nil)
}

// dialer connects to the router from a rotating set of source addresses.
type dialer struct {
	srcs []netip.Addr
	next atomic.Uint64
}

// dial connects to host. With source addresses, it binds one (port chosen
// at connect time, IP_BIND_ADDRESS_NO_PORT) so that many source addresses
// multiply the ephemeral ports available.
func (d *dialer) dial(host string, timeout time.Duration) (net.Conn, error) {
	nd := net.Dialer{Timeout: timeout, KeepAlive: -1} // no TCP keepalive: three setsockopts a connect, 5 % of churn's CPU
	if len(d.srcs) > 0 {
		ip := d.srcs[d.next.Add(1)%uint64(len(d.srcs))]
		nd.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			return serr
		}
	}
	c, err := nd.Dial("tcp", host)
	if err != nil {
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			return nil, fmt.Errorf("%w (open-file limit %d)", err, fileLimit())
		}
		return nil, err
	}
	return c, nil
}

// parseSources reads "127.0.0.2-127.0.0.40" or "a,b,c" (empty: none).
func parseSources(spec string) ([]netip.Addr, error) {
	if spec == "" {
		return nil, nil
	}
	var out []netip.Addr
	for _, part := range splitComma(spec) {
		lo, hi, isRange := cut(part, '-')
		a, err := netip.ParseAddr(lo)
		if err != nil {
			return nil, fmt.Errorf("-src %q: %w", spec, err)
		}
		if !a.IsLoopback() {
			return nil, fmt.Errorf("-src %q: %s is not a loopback address", spec, a)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, err := netip.ParseAddr(hi)
		if err != nil || b.Less(a) {
			return nil, fmt.Errorf("-src %q: bad range", spec)
		}
		for x := a; ; x = x.Next() {
			out = append(out, x)
			if x == b || len(out) > 1<<16 {
				break
			}
		}
	}
	return out, nil
}

func splitComma(s string) []string {
	var out []string
	for len(s) > 0 {
		p, rest, _ := cut(s, ',')
		if p != "" {
			out = append(out, p)
		}
		s = rest
	}
	return out
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// fileLimit returns the process's open-file soft limit.
func fileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

// raiseFileLimit raises the soft open-file limit to the hard one and
// returns the result.
func raiseFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			fmt.Fprintln(os.Stderr, "wampbench: cannot raise the open-file limit:", err)
		}
	}
	return fileLimit()
}

// quietLogger drops gnet's log lines.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(string, ...any) {}
