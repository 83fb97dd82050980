package loop

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The TLS shim and the handshake goroutines (see tls.go for the design).

// wouldBlock is the error the shim's Read returns when no whole record is
// buffered: a net.Error that is a timeout and temporary, which crypto/tls
// does not keep as the connection's error (tls.go). A comparable value:
// returning it does not allocate, and tlsRead tells it apart by ==.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "loop: tls: no whole record buffered" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}

// tlsShim is the net.Conn under a TLS connection's tls.Conn. While the
// handshake runs, hs is set and Read and Write go to it, on the handshake
// goroutine; afterwards they run on the loop: Read hands over the next
// whole record (tlsConn.feed), Write appends ciphertext to the
// connection's pending output. Close and the deadlines do nothing: the
// loop closes the socket, and the scan enforces the deadlines.
type tlsShim struct {
	t             *tlsConn
	hs            *tlsHS // set before the goroutine starts, cleared once it is done (on the loop)
	local, remote net.Addr
}

// Read implements net.Conn.
func (s *tlsShim) Read(p []byte) (int, error) {
	if hs := s.hs; hs != nil {
		return hs.read(p)
	}
	return s.t.feed(p)
}

// Write implements net.Conn.
func (s *tlsShim) Write(p []byte) (int, error) {
	if hs := s.hs; hs != nil {
		return hs.write(p)
	}
	s.t.cn.queueCT(p)
	return len(p), nil
}

func (s *tlsShim) Close() error                     { return nil }
func (s *tlsShim) LocalAddr() net.Addr              { return s.local }
func (s *tlsShim) RemoteAddr() net.Addr             { return s.remote }
func (s *tlsShim) SetDeadline(time.Time) error      { return nil }
func (s *tlsShim) SetReadDeadline(time.Time) error  { return nil }
func (s *tlsShim) SetWriteDeadline(time.Time) error { return nil }

// feed hands crypto/tls, on the loop, at most the rest of one record: from
// the records kept from the handshake, then from gnet's buffer, and only
// once the record is whole there. It returns errWouldBlock when no whole
// record is buffered. A record whose header announces more than the
// protocol allows is handed over by its header alone: crypto/tls refuses
// it (record_overflow) without waiting for its body.
func (t *tlsConn) feed(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(t.pre) > 0 { // whole records only, aligned
		if t.left == 0 {
			t.left = recordHeaderLen + (int(t.pre[3])<<8 | int(t.pre[4]))
		}
		n := copy(p[:min(len(p), t.left)], t.pre)
		t.pre, t.left = t.pre[n:], t.left-n
		if len(t.pre) == 0 {
			t.pre = nil
		}
		t.fed, t.trimmed = true, false
		return n, nil
	}
	c := t.cn.wire()
	if t.left == 0 {
		hdr, err := c.Peek(recordHeaderLen)
		if err != nil {
			return 0, errWouldBlock
		}
		n := recordHeaderLen + (int(hdr[3])<<8 | int(hdr[4]))
		switch {
		case n > recordHeaderLen+maxCiphertext:
			n = recordHeaderLen
		case c.InboundBuffered() < n:
			return 0, errWouldBlock
		}
		t.left = n
	}
	k := min(len(p), t.left)
	b, err := c.Peek(k)
	if err != nil {
		return 0, errWouldBlock
	}
	copy(p, b)
	c.Discard(k) // k > 0
	t.left -= k
	t.fed, t.trimmed = true, false
	return k, nil
}

// recordReady reports whether feed has a record to hand over (loop).
func (t *tlsConn) recordReady() bool {
	if len(t.pre) > 0 || t.left > 0 {
		return true
	}
	c := t.cn.wire()
	hdr, err := c.Peek(recordHeaderLen)
	if err != nil {
		return false
	}
	n := recordHeaderLen + (int(hdr[3])<<8 | int(hdr[4]))
	return n > recordHeaderLen+maxCiphertext || c.InboundBuffered() >= n
}

// tlsHS is a handshake in progress: the input the loop moved from gnet's
// buffer (whole records), the output crypto/tls wrote, and the result.
// The loop and the handshake goroutine share it under mu; the tls.Conn is
// the goroutine's until the loop runs tlsHandshakeDone.
type tlsHS struct {
	t *tlsConn // static

	mu     sync.Mutex
	cond   sync.Cond // signalled when input arrives or the handshake is closed
	in     []byte    // records the loop moved in; in[r:] not yet read
	r      int
	left   int    // bytes of the record being read still to hand over
	taken  int    // bytes handed to crypto/tls, at most tlsHandshakeReadMax
	out    []byte // ciphertext written, for the loop to take
	posted bool   // a task to take out is queued
	closed bool   // the connection is gone: reads and writes fail
	done   bool
	err    error

	// The pool's queue and set of handshakes; guarded by tlsPool.mu.
	queued     bool
	prev, next *tlsHS
	live       bool       // in tlsPool.live: started and not finished or cancelled
	src        netip.Addr // while live: the source counted in tlsPool.bySrc (zero: not counted)
}

func newTLSHS(t *tlsConn) *tlsHS {
	hs := &tlsHS{t: t}
	hs.cond.L = &hs.mu
	t.shim.hs = hs
	return hs
}

// push adds a whole record (loop). It reports false when that would take
// the input waiting past tlsHandshakeInMax.
func (hs *tlsHS) push(rec []byte) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.closed {
		return true
	}
	if len(hs.in)-hs.r+len(rec) > tlsHandshakeInMax {
		return false
	}
	if hs.r > 0 && hs.r == len(hs.in) {
		hs.in, hs.r = hs.in[:0], 0
	}
	hs.in = append(hs.in, rec...)
	hs.cond.Signal()
	return true
}

// holds returns, for the budget, the handshake's input: the bytes the
// client sent into it (got) and the memory they take at most (mem): the
// input buffer's capacity, and for what crypto/tls read, its record
// buffer (up to a whole record) and its message buffer, which keeps a
// message until it is whole and grows by doubling (up to twice what was
// read) (loop). The goroutine may read more after the loop counted: what
// it reads comes from the input buffer, counted already, which read
// releases once it is empty.
func (hs *tlsHS) holds() (got, mem int) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	rec := min(hs.taken, recordHeaderLen+maxCiphertext+bytes.MinRead)
	return hs.taken + len(hs.in) - hs.r, cap(hs.in) + 2*hs.taken + rec
}

// read is the shim's Read during the handshake (goroutine): it blocks until
// a record is there or the connection is gone, and hands over at most the
// rest of one record, so that crypto/tls reads exactly the handshake's
// records and leaves what follows for the loop.
func (hs *tlsHS) read(p []byte) (int, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.r == len(hs.in) && !hs.closed {
		// Waiting for the network: another handshake may compute meanwhile.
		hs.mu.Unlock()
		pool := &hs.t.cn.ls.e.tlsPool
		pool.cpuRelease()
		hs.mu.Lock()
		for hs.r == len(hs.in) && !hs.closed {
			hs.cond.Wait()
		}
		hs.mu.Unlock()
		pool.cpuAcquire()
		hs.mu.Lock()
	}
	if hs.closed {
		return 0, net.ErrClosed
	}
	in := hs.in[hs.r:]
	if hs.left == 0 {
		hs.left = recordHeaderLen + (int(in[3])<<8 | int(in[4]))
		if hs.taken+hs.left > tlsHandshakeReadMax {
			return 0, errTLSHandshakeLong
		}
	}
	n := copy(p[:min(len(p), hs.left)], in)
	hs.r += n
	hs.left -= n
	hs.taken += n
	if hs.r == len(hs.in) {
		// Read whole: the array goes, as crypto/tls holds the bytes now
		// (a stalled handshake kept both).
		hs.in, hs.r = nil, 0
	}
	return n, nil
}

// write is the shim's Write during the handshake (goroutine): the bytes
// are queued for the loop, which a task tells.
func (hs *tlsHS) write(p []byte) (int, error) {
	hs.mu.Lock()
	if hs.closed {
		hs.mu.Unlock()
		return 0, net.ErrClosed
	}
	hs.out = append(hs.out, p...)
	post := !hs.posted
	hs.posted = true
	hs.mu.Unlock()
	if post {
		cn := hs.t.cn
		cn.ls.Execute(cn.tlsTakeOut) // fails only at shutdown, which closes the connection
	}
	return len(p), nil
}

// takeOut returns what crypto/tls wrote since the last call (loop).
func (hs *tlsHS) takeOut() []byte {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	out := hs.out
	hs.out, hs.posted = nil, false
	return out
}

// run performs the handshake (goroutine) and tells the loop.
func (hs *tlsHS) run() {
	pool := &hs.t.cn.ls.e.tlsPool
	pool.cpuAcquire()
	err := hs.t.tc.Handshake()
	pool.cpuRelease()
	pool.done.Add(1)
	hs.mu.Lock()
	hs.done, hs.err = true, err
	hs.mu.Unlock()
	cn := hs.t.cn
	cn.ls.Execute(cn.tlsHandshakeDone)
}

// result returns the handshake's error (loop, once it is done).
func (hs *tlsHS) result() error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.err
}

// rest returns the input the handshake did not read, whole records from a
// record boundary on, and how much of a record it left unread (loop, once
// it is done).
func (hs *tlsHS) rest() ([]byte, int) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	in := hs.in[hs.r:]
	hs.in, hs.r = nil, 0
	if len(in) == 0 {
		return nil, 0
	}
	return in, hs.left
}

// close fails the handshake's reads and writes (loop, when the connection
// is gone), which ends its goroutine.
func (hs *tlsHS) close() {
	hs.mu.Lock()
	hs.closed = true
	hs.in, hs.r, hs.out = nil, 0, nil
	hs.cond.Broadcast()
	hs.mu.Unlock()
}

// tlsPool bounds the handshakes that run at once: each runs on a
// goroutine, at most max of them; a handshake started past that waits in a
// FIFO queue, and a goroutine that finishes one takes the next. Of the
// goroutines, at most cap(cpu) compute at a time — half the CPUs, at least
// one: a handshake holds a slot of cpu except while it waits for the
// client's next flight — so that a storm of handshakes (each a few hundred
// µs to a few ms of public-key cryptography) leaves CPUs to the event
// loops: the Go scheduler would otherwise make a loop that wakes from
// epoll wait behind every runnable handshake.
//
// A handshake holds its goroutine while it waits for the client's next
// flight, up to handshake_timeout: a client that sends a ClientHello and
// then nothing holds one for that long at no cost to itself. So that one
// client cannot hold them all (and have every other client's handshake
// wait in the queue behind its own), at most perSrc handshakes in progress
// — running or queued — come from one source (clientSource: an IPv4 address,
// an IPv6 /64); start refuses the others. Safe for concurrent use.
type tlsPool struct {
	cpu     chan struct{} // static after New
	perSrc  int           // static after New; 0: no bound per source
	mu      sync.Mutex
	max     int
	running int
	queued  int
	head    *tlsHS
	tail    *tlsHS
	stopped bool
	live    map[*tlsHS]struct{} // every handshake started and not finished: running, waiting for input or queued
	bySrc   map[netip.Addr]int  // the live handshakes of each source that has any (deleted at zero)
	wg      sync.WaitGroup

	done atomic.Uint64 // handshakes finished (memburst.go counts them)
}

// Outcomes of tlsPool.start.
type tlsStart uint8

const (
	tlsStarted   tlsStart = iota // running, or queued for a goroutine
	tlsStopped                   // the pool is stopped (Shutdown)
	tlsSrcIsFull                 // the source has perSrc handshakes in progress
)

// start runs hs, now or when a goroutine is free, unless the pool is
// stopped or hs's source is at its bound. A handshake started counts
// against its source until forget: whichever way it ends (finished,
// cancelled from the queue, its goroutine failed by close or stop), the
// pool forgets it, and so releases the count, exactly once.
func (p *tlsPool) start(hs *tlsHS) tlsStart {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return tlsStopped
	}
	if src := hs.t.src; p.perSrc > 0 && src.IsValid() {
		n := p.bySrc[src]
		if n >= p.perSrc {
			return tlsSrcIsFull
		}
		if p.bySrc == nil {
			p.bySrc = make(map[netip.Addr]int)
		}
		p.bySrc[src] = n + 1
		hs.src = src
	}
	if p.live == nil {
		p.live = make(map[*tlsHS]struct{})
	}
	p.live[hs] = struct{}{}
	hs.live = true
	if p.running < p.max {
		p.running++
		p.wg.Add(1)
		go p.work(hs)
		return tlsStarted
	}
	hs.queued = true
	hs.prev = p.tail
	if p.tail != nil {
		p.tail.next = hs
	} else {
		p.head = hs
	}
	p.tail = hs
	p.queued++
	return tlsStarted
}

// work runs handshakes until the queue is empty.
func (p *tlsPool) work(hs *tlsHS) {
	defer p.wg.Done()
	for hs != nil {
		hs.run()
		hs = p.next(hs)
	}
}

// next forgets the finished handshake and pops the next queued one, or
// gives the goroutine's slot back.
func (p *tlsPool) next(finished *tlsHS) *tlsHS {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forget(finished)
	hs := p.head
	if hs == nil || p.stopped {
		p.running--
		return nil
	}
	p.unlink(hs)
	return hs
}

// cancel removes hs from the queue if it is waiting there (loop, when the
// connection is gone).
func (p *tlsPool) cancel(hs *tlsHS) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if hs.queued {
		p.unlink(hs)
		p.forget(hs)
	}
}

// forget drops hs from the handshakes in progress and releases its
// source's count (called with mu held; idempotent).
func (p *tlsPool) forget(hs *tlsHS) {
	if !hs.live {
		return
	}
	delete(p.live, hs)
	hs.live = false
	if src := hs.src; src.IsValid() {
		hs.src = netip.Addr{}
		if n := p.bySrc[src] - 1; n > 0 {
			p.bySrc[src] = n
		} else {
			delete(p.bySrc, src) // the map holds the sources with handshakes in progress only
		}
	}
}

func (p *tlsPool) unlink(hs *tlsHS) {
	if hs.prev != nil {
		hs.prev.next = hs.next
	} else {
		p.head = hs.next
	}
	if hs.next != nil {
		hs.next.prev = hs.prev
	} else {
		p.tail = hs.prev
	}
	hs.prev, hs.next, hs.queued = nil, nil, false
	p.queued--
}

// stop refuses new handshakes, drops the queued ones and closes every
// handshake still held (Shutdown, once the loops have stopped): a
// handshake goroutine waiting for its client's next flight fails its read
// at once, one computing fails its next read or write, and one waiting for
// a CPU slot gets it from one that finishes. The loops close every
// connection as they stop, which closes its handshake too (conn.closed);
// stop does not depend on it. wait then waits for the goroutines. The
// queued handshakes, which no goroutine will take, are forgotten here; the
// running ones as their goroutines end.
func (p *tlsPool) stop() {
	p.mu.Lock()
	p.stopped = true
	held := make([]*tlsHS, 0, len(p.live))
	for hs := range p.live {
		held = append(held, hs)
	}
	for p.head != nil {
		hs := p.head
		p.unlink(hs)
		p.forget(hs)
	}
	p.mu.Unlock()
	for _, hs := range held {
		hs.close()
	}
}

// wait waits for the handshake goroutines to end: after stop each has at
// most the public-key computation in progress left to finish. It gives up
// once ctx is done and tlsStopGrace has passed too (a drain may have used
// ctx up), leaving the goroutines to end on their own.
func (p *tlsPool) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	grace := time.NewTimer(tlsStopGrace)
	defer grace.Stop()
	for ctxDone, graceDone := ctx.Done(), grace.C; ctxDone != nil || graceDone != nil; {
		select {
		case <-done:
			return nil
		case <-ctxDone:
			ctxDone = nil
		case <-graceDone:
			graceDone = nil
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("loop: shutdown: TLS handshake goroutines still running: %w", err)
	}
	return fmt.Errorf("loop: shutdown: TLS handshake goroutines still running after %v", tlsStopGrace)
}

// tlsStopGrace is how long Shutdown waits for handshake goroutines at
// least, whatever its context says.
const tlsStopGrace = 2 * time.Second

func (p *tlsPool) cpuAcquire() { p.cpu <- struct{}{} }

func (p *tlsPool) cpuRelease() { <-p.cpu }

// counts returns the handshakes running and waiting.
func (p *tlsPool) counts() (running, queued int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running, p.queued
}
