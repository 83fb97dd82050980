//go:build linux

package load

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/loop/uring"
)

// uringClient is the third driver (-driver uring): event loops of the
// tool's own, each an epoll instance for readiness and an io_uring ring
// for the reads and writes themselves. A round reads every ready session
// in one io_uring_enter and writes every session with output in another,
// where gnet's client loop makes one read(2) and one write(2) per session.
//
// Why the tool needs it: at 1,000 subscribers and 100,000 events/s the
// gnet client spent 77 % of its CPU in read(2) (5 µs a read on this VM,
// which has page-table isolation and no PCID), so the tool on its CPU was
// what bounded the measured latency, not the router. The router's own
// io_uring send path is what issue 15 measures; a receiver that costs
// less per event lets the figures show the router. No TLS.
//
// Its reads are recvmsg(2)s on sockets with SO_TIMESTAMPNS, so each read
// also brings the kernel's arrival time of its data: when the router's send
// put it in the subscriber's socket. Pubsub reports the latency to that
// moment (arrive_p99_us) beside the latency to the tool's read (p99_us):
// one tool reading 1,000 sessions on one CPU reads the last of a fan-out
// late, where 1,000 real subscribers would each read at once.
type uringClient struct {
	loops  []*uloop
	next   atomic.Uint32
	wg     sync.WaitGroup
	stamps *rxStamps // keeps the kernel's receive timestamps on; nil if they never came
}

// uloop is one event loop: one goroutine owns conns, the ring and the
// buffers; other goroutines talk to it through tasks and the eventfd.
type uloop struct {
	epfd, efd int
	ring      *uring.Ring
	events    []unix.EpollEvent

	mu      sync.Mutex // guards adds, woken and stopped
	adds    []*uconn
	woken   []*uconn
	stopped bool

	// The loop goroutine's own.
	err   error // why the loop ended early (a failed epoll or ring)
	conns map[int]*uconn
	batch []*uconn // the round's receives, then its sends (a ring operation's tag is its index)
	dirty []*uconn // output to write this round
	efdb  [8]byte
	wait  int // epoll_wait's timeout: -1 sleeps until an event, 0 polls (-spin)
}

// uconn is one session's socket on a loop.
type uconn struct {
	l       *uloop
	fd      int
	s       *sess
	in      []byte // input not yet consumed by the session, at in[:inLen]
	inLen   int
	hdr     unix.Msghdr // the receive's recvmsg header: iov (into in) and ctl
	iov     unix.Iovec
	ctl     [64]byte // control messages: the arrival timestamp
	out     []byte   // output the socket has not taken yet
	pollOut bool     // EPOLLOUT registered: out waits for room
	dirty   bool
	closed  bool
	wq      atomic.Bool // in l.woken
}

const (
	uringInBuf   = 64 << 10
	uringEntries = 1024
)

// newURingClient starts the loops. It returns once the kernel stamps the
// segments its sockets receive (holdRxStamps), or says through logf why
// arrival times may miss events.
func newURingClient(loops int, spin bool, logf func(string, ...any)) (*uringClient, error) {
	if err := uring.Probe(); err != nil {
		return nil, fmt.Errorf("-driver uring: %w", err)
	}
	if loops <= 0 {
		loops = runtime.GOMAXPROCS(0)
	}
	uc := &uringClient{}
	for i := 0; i < loops; i++ {
		l, err := newULoop()
		if err != nil {
			uc.stop()
			return nil, err
		}
		if spin {
			l.wait = 0
		}
		uc.loops = append(uc.loops, l)
		uc.wg.Add(1)
		go func() {
			defer uc.wg.Done()
			l.run()
		}()
	}
	var err error
	if uc.stamps, err = holdRxStamps(rxStampWait); err != nil {
		logf("-driver uring: arrival times may miss events: %v", err)
	}
	return uc, nil
}

// rxStampWait bounds holdRxStamps's wait.
const rxStampWait = 10 * time.Second

// rxStamps is a loopback TCP connection whose receiving end has
// SO_TIMESTAMPNS on.
//
// Linux stamps received packets only while some socket of the system
// asks for it, and switches the stamping on from a work queue, after the
// first socket asked (net_enable_timestamp: a static key, deferred when no
// socket had asked before), and off the same way after the last one is
// closed. Until the switch, TCP hands the data over without a stamp
// (recvmsg gives no SCM_TIMESTAMPNS). On an idle machine that is a few
// microseconds; with the 2 CPUs busy it took 34 to 643 ms (a probe writing
// a byte a millisecond saw 31 to 596 unstamped), longer than a run's
// sessions took to join and warm up: CI's 5,000 events/s run timed 250
// events (5 publications to 50 subscribers) to their read and not to their
// arrival (arrive_missing=250). So the client turns stamping on before any
// session connects and waits until a byte it sends itself comes stamped,
// and keeps this connection open until it stops, so that the switch stays
// on while sessions come and go (their sockets ask too, and find it on).
type rxStamps struct {
	w, r net.Conn
}

// holdRxStamps returns once the kernel stamps received TCP segments, with
// the connection that keeps it so (close it with close), or an error after
// wait without a stamp.
func holdRxStamps(wait time.Duration) (*rxStamps, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	r, err := ln.Accept()
	if err != nil {
		w.Close()
		return nil, err
	}
	p := &rxStamps{w: w, r: r}
	if err := p.await(wait); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// await turns SO_TIMESTAMPNS on at the receiving end, then sends a byte
// and reads it until it comes with its arrival time.
func (p *rxStamps) await(wait time.Duration) error {
	rc, err := p.r.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_TIMESTAMPNS: %w", serr)
	}
	deadline := time.Now().Add(wait)
	p.r.SetReadDeadline(deadline)
	u := &uconn{in: make([]byte, 64)}
	for sent := 1; ; sent++ {
		if _, err := p.w.Write([]byte{0}); err != nil {
			return err
		}
		var stamped bool
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			u.inLen = 0
			_, rerr = recvmsg(int(fd), u.armRecv())
			if rerr == unix.EAGAIN {
				return false // wait for the byte
			}
			_, stamped = u.arrival()
			return true
		})
		switch {
		case err != nil:
			return fmt.Errorf("no receive timestamp after %v (%d bytes sent): %w", wait, sent, err)
		case rerr != nil:
			return rerr
		case stamped:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("no receive timestamp after %v (%d bytes sent)", wait, sent)
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *rxStamps) close() {
	p.w.Close()
	p.r.Close()
}

func newULoop() (*uloop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, err
	}
	r, err := uring.New(uringEntries)
	if err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, err
	}
	return &uloop{epfd: epfd, efd: efd, ring: r, wait: -1, events: make([]unix.EpollEvent, 1024), conns: map[int]*uconn{}}, nil
}

// add takes over the socket of c (a duplicate of its descriptor; c is
// closed) and starts s's handshake on one of the loops.
func (uc *uringClient) add(c net.Conn, s *sess) error {
	if s.ep.tls != nil {
		c.Close()
		return errors.New("-driver uring has no TLS")
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		c.Close()
		return fmt.Errorf("-driver uring: %T has no descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		c.Close()
		return err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		derr = err
	}
	c.Close()
	if derr != nil {
		return derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return fmt.Errorf("-driver uring: SO_TIMESTAMPNS: %w", err)
	}
	l := uc.loops[int(uc.next.Add(1)-1)%len(uc.loops)]
	u := &uconn{l: l, fd: fd, s: s, in: make([]byte, uringInBuf)}
	s.uc = u
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		unix.Close(fd)
		return errors.New("-driver uring: stopped")
	}
	l.adds = append(l.adds, u)
	l.mu.Unlock()
	l.signal()
	return nil
}

// stop closes every session's socket and ends the loops.
func (uc *uringClient) stop() {
	for _, l := range uc.loops {
		l.mu.Lock()
		l.stopped = true
		l.mu.Unlock()
		l.signal()
	}
	uc.wg.Wait()
	if uc.stamps != nil {
		uc.stamps.close()
		uc.stamps = nil
	}
}

// wake runs the session's waker role on its loop (from any goroutine).
func (u *uconn) wake() {
	if !u.wq.CompareAndSwap(false, true) {
		return
	}
	l := u.l
	l.mu.Lock()
	l.woken = append(l.woken, u)
	l.mu.Unlock()
	l.signal()
}

func (l *uloop) signal() {
	var one = [8]byte{1}
	unix.Write(l.efd, one[:]) // EAGAIN: the counter is already non-zero
}

func (l *uloop) run() {
	defer l.shutdown()
	var adds, woken []*uconn
	for {
		n, err := unix.EpollWait(l.epfd, l.events, l.wait)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			l.err = err
			return
		}
		for i := range l.events[:n] {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.efd {
				unix.Read(l.efd, l.efdb[:])
				continue
			}
			u := l.conns[fd]
			if u == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 && len(u.out) > 0 {
				l.markDirty(u)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 {
				if u.inLen == len(u.in) { // a frame larger than the buffer
					u.in = append(u.in, make([]byte, len(u.in))...)
				}
				l.batch = append(l.batch, u) // its receive
			}
		}
		l.submit(true)
		if l.err != nil {
			return
		}

		l.mu.Lock()
		stopped := l.stopped
		adds, l.adds = append(adds[:0], l.adds...), l.adds[:0]
		woken, l.woken = append(woken[:0], l.woken...), l.woken[:0]
		l.mu.Unlock()
		if stopped {
			return
		}
		for _, u := range adds {
			l.open(u)
		}
		now := nowNS()
		for _, u := range woken {
			u.wq.Store(false)
			if !u.closed {
				if w, ok := u.s.r.(waker); ok && u.s.st == stOpen {
					w.wake(u.s, now)
				}
				l.after(u)
			}
		}
		l.flush()
		if l.err != nil {
			return
		}
	}
}

// submit performs the batch's operations and handles their outcomes:
// receives feed the sessions (reads == true), sends trim their output.
// One operation is a plain read(2) or write(2), which costs less than an
// io_uring_enter; more go to the ring, up to its size per enter.
func (l *uloop) submit(reads bool) {
	defer func() { l.batch = l.batch[:0] }()
	if len(l.batch) == 1 {
		u := l.batch[0]
		var n int
		var err error
		if reads {
			n, err = recvmsg(u.fd, u.armRecv())
		} else {
			n, err = unix.Write(u.fd, u.out)
		}
		res := int32(n)
		if err != nil {
			errno, ok := err.(unix.Errno)
			switch {
			case !ok:
				res = -int32(unix.EIO)
			case errno == unix.EINTR:
				res = -int32(unix.EAGAIN) // epoll reports it again
			default:
				res = -int32(errno)
			}
		}
		now, wall := clocks()
		l.outcome(u, reads, res, now, wall)
		return
	}
	for start := 0; start < len(l.batch); {
		end := start
		for ; end < len(l.batch); end++ {
			u, tag := l.batch[end], uint64(end)
			var ok bool
			if reads {
				ok = l.ring.RecvMsg(u.fd, u.armRecv(), tag)
			} else {
				ok = l.ring.Send(u.fd, u.out, tag)
			}
			if !ok {
				break
			}
		}
		done, err := l.ring.Submit()
		now, wall := clocks()
		for _, c := range done {
			l.outcome(l.batch[c.Tag], reads, c.Res, now, wall)
		}
		if err == nil && end == start {
			err = l.ring.Err() // nil: the ring refused an empty buffer, which has nothing to do
			end++
		}
		if err != nil {
			l.err = err
			return
		}
		start = end
	}
}

func (l *uloop) outcome(u *uconn, reads bool, res int32, now, wall int64) {
	if reads {
		l.received(u, res, now, wall)
	} else {
		l.sent(u, res)
	}
}

func (l *uloop) received(u *uconn, res int32, now, wall int64) {
	if u.closed {
		return
	}
	switch {
	case res > 0:
		u.inLen += int(res)
		s := u.s
		s.arrive = 0
		if at, ok := u.arrival(); ok {
			// On the tool's clock; a stamp from the future (the wall clock
			// stepped) or from long ago is left out rather than trusted.
			if a := now - (wall - at); a <= now && a > now-int64(10*time.Second) {
				s.arrive = a
			}
		}
		used := s.input(u.in[:u.inLen], now)
		s.arrive = 0
		u.inLen = copy(u.in, u.in[used:u.inLen])
		if w, ok := s.r.(waker); ok && s.st == stOpen {
			w.wake(s, now)
		}
		l.after(u)
	case res == 0:
		l.close(u, errors.New("EOF"))
	case res == -int32(unix.EAGAIN):
	default:
		l.close(u, unix.Errno(-res))
	}
}

// armRecv points the connection's recvmsg header at its free input space
// and control buffer.
func (u *uconn) armRecv() *unix.Msghdr {
	u.iov = unix.Iovec{Base: &u.in[u.inLen]}
	u.iov.SetLen(len(u.in) - u.inLen)
	u.hdr = unix.Msghdr{Iov: &u.iov, Iovlen: 1, Control: &u.ctl[0]}
	u.hdr.SetControllen(len(u.ctl))
	return &u.hdr
}

// arrival returns the kernel's arrival time (wall clock, ns) of the data
// the last receive read: its SCM_TIMESTAMPNS control message. For TCP it
// is the time of the last segment read, so events that arrived earlier in
// the same read are timed a little late, never early.
func (u *uconn) arrival() (int64, bool) {
	const hdrLen = int(unsafe.Sizeof(unix.Cmsghdr{}))
	c := u.ctl[:min(int(u.hdr.Controllen), len(u.ctl))]
	for len(c) >= hdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		n := int(h.Len)
		if n < hdrLen || n > len(c) {
			return 0, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && n >= hdrLen+int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&c[hdrLen]))
			return ts.Nano(), true
		}
		const align = int(unsafe.Sizeof(uintptr(0)))
		c = c[min(len(c), (n+align-1)&^(align-1)):]
	}
	return 0, false
}

// recvmsg is recvmsg(2) with MSG_DONTWAIT on a prepared header, without
// the allocations of unix.Recvmsg.
func recvmsg(fd int, m *unix.Msghdr) (int, error) {
	n, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(m)), unix.MSG_DONTWAIT)
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// clocks reads the tool's clock (nowNS) and the wall clock (ns since the
// epoch, the clock of the kernel's receive timestamps) at one instant.
func clocks() (now, wall int64) {
	t := time.Now()
	return int64(t.Sub(base)), t.UnixNano()
}

// after moves the session's new output to its socket's queue, and closes
// a session that is done.
func (l *uloop) after(u *uconn) {
	s := u.s
	if len(s.out) > 0 {
		u.out = append(u.out, s.out...)
		s.out = s.out[:0]
		l.markDirty(u)
	}
	if s.st == stDone && len(u.out) == 0 {
		l.close(u, nil)
	}
}

func (l *uloop) markDirty(u *uconn) {
	if !u.dirty {
		u.dirty = true
		l.dirty = append(l.dirty, u)
	}
}

// flush writes every dirty socket's output, one io_uring_enter for all.
func (l *uloop) flush() {
	for _, u := range l.dirty {
		if u.closed || len(u.out) == 0 {
			continue
		}
		l.batch = append(l.batch, u) // its send
	}
	l.submit(false)
	for _, u := range l.dirty {
		u.dirty = false
		if u.closed {
			continue
		}
		if u.s.st == stDone && len(u.out) == 0 {
			l.close(u, nil)
			continue
		}
		if want := len(u.out) > 0; want != u.pollOut {
			ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
			if want {
				ev |= unix.EPOLLOUT
			}
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, u.fd, &unix.EpollEvent{Events: ev, Fd: int32(u.fd)})
			u.pollOut = want
		}
	}
	l.dirty = l.dirty[:0]
}

func (l *uloop) sent(u *uconn, res int32) {
	if u.closed {
		return
	}
	switch {
	case res >= 0:
		n := copy(u.out, u.out[res:])
		u.out = u.out[:n]
	case res == -int32(unix.EAGAIN):
	default:
		l.close(u, unix.Errno(-res))
	}
}

// open registers a new socket and queues its handshake.
func (l *uloop) open(u *uconn) {
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, u.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(u.fd)}); err != nil {
		unix.Close(u.fd)
		u.closed = true
		u.s.closed(err)
		return
	}
	l.conns[u.fd] = u
	u.s.start()
	l.after(u)
}

func (l *uloop) close(u *uconn, err error) {
	if u.closed {
		return
	}
	u.closed = true
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, u.fd, nil)
	delete(l.conns, u.fd)
	unix.Close(u.fd)
	u.s.closed(err)
}

// shutdown closes every socket (the sessions end as with gnet's Stop) and
// the loop's own descriptors.
func (l *uloop) shutdown() {
	l.mu.Lock()
	l.stopped = true
	adds := l.adds
	l.adds = nil
	l.mu.Unlock()
	for _, u := range adds {
		unix.Close(u.fd)
		u.s.closed(nil)
	}
	for _, u := range l.conns {
		l.close(u, l.err)
	}
	l.ring.Close()
	unix.Close(l.epfd)
	unix.Close(l.efd)
}
