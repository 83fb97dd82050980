//go:build linux

package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is one io_uring instance that sends batches of buffers to sockets
// (and, for the load tool, receives): Send queues a send, Recv a receive,
// Submit hands every queued operation to the kernel in one io_uring_enter
// and returns when each has completed.
//
// Sends carry MSG_DONTWAIT (IORING_OP_SEND ignores the socket's
// O_NONBLOCK: without it a send to a full socket parks in the kernel
// instead of failing with EAGAIN) and MSG_NOSIGNAL, so each completes
// within the enter that submits it: what the socket takes now, or -EAGAIN.
// Submit therefore waits for every completion before it returns, and a
// buffer given to Send is the kernel's only until then.
//
// A Ring is not safe for concurrent use: it belongs to one goroutine (an
// event loop). It holds one file descriptor and three small mappings
// (about 100 KiB at 1024 entries); Close releases them.
type Ring struct {
	fd       int
	features uint32

	sqMem, cqMem, sqeMem []byte // mappings; cqMem aliases sqMem with featSingleMmap
	sqHead, sqTail       *uint32
	sqMask, sqEntries    uint32
	sqes                 []sqe
	cqHead, cqTail       *uint32
	cqMask               uint32
	cqes                 []cqe

	tail   uint32 // our copy of the SQ tail: SQEs written up to here
	slots  []slot // by user_data: the sends queued or in the kernel
	free   []uint32
	queued int // sends queued since the last Submit
	done   []Completion
	broken error

	// Timeout bounds a wait for completions on kernels with
	// IORING_FEAT_EXT_ARG (5.11): after it, the sends still in the kernel
	// are cancelled. With MSG_DONTWAIT a send never waits, so this is a
	// guard against a kernel that parks one anyway: the loop goes on, the
	// cancelled sends complete with -ECANCELED (nothing of them sent), and
	// Stalls counts them. It also bounds how long Submit retries an
	// io_uring_enter that the kernel refuses for want of resources
	// (EAGAIN, EBUSY) without completing anything: past it the ring breaks
	// as for any other failure (see Submit). Default 1 s.
	Timeout time.Duration

	stalls uint64
	enters uint64
	ts     kernelTimespec
	arg    getEventsArg
}

// slot is one send between Send and its completion.
type slot struct {
	tag  uint64
	buf  []byte       // referenced until the completion: the kernel reads it
	hdr  *unix.Msghdr // RecvMsg's header, likewise
	busy bool         // submitted or queued, no completion yet
	done bool         // given -ECANCELED by fail, released after it
}

// Completion is the outcome of one send: Res is the number of bytes the
// socket took (possibly fewer than the buffer's length, possibly 0), or a
// negated errno: -EAGAIN when the socket was full, -ECONNRESET or -EPIPE
// when the peer is gone, -ECANCELED when nothing was sent because the send
// was cancelled or never reached the kernel.
type Completion struct {
	Tag uint64
	Res int32
}

// Err returns Res as an error (nil when Res ≥ 0).
func (c Completion) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return unix.Errno(-c.Res)
}

// cancelBit marks the user_data of cancel requests.
const cancelBit = 1 << 63

// DefaultEntries is the ring size the loops use: up to this many sends per
// io_uring_enter (a round with more dirty connections takes several).
const DefaultEntries = 1024

// New sets up a ring for up to entries sends per Submit (rounded up to a
// power of two by the kernel and clamped to its maximum). It fails when
// io_uring is not available: see Probe for the causes.
func New(entries int) (*Ring, error) {
	if entries < 1 {
		entries = 1
	}
	var p params
	var fd int
	var err error
	// Try the cheapest flags first; older kernels refuse the newer ones
	// with EINVAL.
	for _, flags := range []uint32{setupClamp | setupSubmitAll | setupCoopTaskrun, setupClamp | setupSubmitAll, setupClamp} {
		p = params{flags: flags}
		fd, err = setup(uint32(entries), &p)
		if err != unix.EINVAL {
			break
		}
	}
	if err != nil {
		return nil, setupError(err)
	}
	r := &Ring{fd: fd, features: p.features, Timeout: time.Second}
	if err := r.mmap(&p); err != nil {
		unix.Close(fd)
		return nil, err
	}
	r.slots = make([]slot, r.sqEntries)
	r.free = make([]uint32, r.sqEntries)
	for i := range r.free {
		r.free[i] = uint32(len(r.free) - 1 - i)
	}
	r.done = make([]Completion, 0, r.sqEntries)
	return r, nil
}

func setup(entries uint32, p *params) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// setupError explains why io_uring_setup failed.
func setupError(err error) error {
	switch err {
	case unix.ENOSYS:
		return fmt.Errorf("io_uring_setup: %w (kernel without io_uring: older than 5.1, or built without CONFIG_IO_URING)", err)
	case unix.EPERM, unix.EACCES:
		return fmt.Errorf("io_uring_setup: %w (io_uring is blocked: sysctl kernel.io_uring_disabled, or a seccomp filter such as Docker's default profile)", err)
	case unix.ENOMEM:
		return fmt.Errorf("io_uring_setup: %w (kernels before 5.12 count ring memory against RLIMIT_MEMLOCK: raise it, e.g. LimitMEMLOCK= in the systemd unit)", err)
	}
	return fmt.Errorf("io_uring_setup: %w", err)
}

func (r *Ring) mmap(p *params) error {
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	single := p.features&featSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("io_uring: mmap SQ ring: %w", err)
	}
	if single {
		r.cqMem = r.sqMem
	} else if r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.unmap()
		return fmt.Errorf("io_uring: mmap CQ ring: %w", err)
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(sqe{}))
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.unmap()
		return fmt.Errorf("io_uring: mmap SQEs: %w", err)
	}
	u32 := func(m []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&m[off])) }
	r.sqHead, r.sqTail = u32(r.sqMem, p.sqOff.head), u32(r.sqMem, p.sqOff.tail)
	r.sqMask, r.sqEntries = *u32(r.sqMem, p.sqOff.ringMask), *u32(r.sqMem, p.sqOff.ringEntries)
	r.cqHead, r.cqTail = u32(r.cqMem, p.cqOff.head), u32(r.cqMem, p.cqOff.tail)
	r.cqMask = *u32(r.cqMem, p.cqOff.ringMask)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&r.cqMem[p.cqOff.cqes])), p.cqEntries)
	// The SQ array maps ring positions to SQEs: identity, set once.
	array := unsafe.Slice((*uint32)(unsafe.Pointer(&r.sqMem[p.sqOff.array])), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.tail = atomic.LoadUint32(r.sqTail)
	return nil
}

func (r *Ring) unmap() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && &r.cqMem[0] != &r.sqMem[0] {
		unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
	}
	r.sqMem, r.cqMem, r.sqeMem, r.sqes, r.cqes = nil, nil, nil, nil, nil
}

// Close releases the ring. Sends queued and not submitted are dropped.
// Safe to call once, by the ring's goroutine, outside Submit.
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	r.unmap()
	err := unix.Close(r.fd)
	r.fd = -1
	if r.broken == nil {
		r.broken = errors.New("io_uring: ring closed")
	}
	return err
}

// Cap returns how many sends one Submit takes at most.
func (r *Ring) Cap() int { return len(r.slots) }

// Queued returns the sends queued since the last Submit.
func (r *Ring) Queued() int { return r.queued }

// Stalls returns how many sends were cancelled because they did not
// complete within Timeout (see Timeout).
func (r *Ring) Stalls() uint64 { return r.stalls }

// Enters returns how many io_uring_enter calls Submit made.
func (r *Ring) Enters() uint64 { return r.enters }

// Err returns why the ring no longer takes sends (a failed
// io_uring_enter, or Close), or nil.
func (r *Ring) Err() error { return r.broken }

// Send queues a send of b to the socket fd, with MSG_DONTWAIT and
// MSG_NOSIGNAL; tag comes back in its Completion. It returns false, and
// queues nothing, when Cap sends are queued already or the ring is broken.
// b must not change until Submit returns; it must not be empty. Does not
// allocate.
func (r *Ring) Send(fd int, b []byte, tag uint64) bool {
	return r.send(fd, b, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, tag)
}

// Recv queues a receive into b from the socket fd, with MSG_DONTWAIT, so
// it too completes within the Submit that submits it: Res is the number of
// bytes read into b, 0 at end of stream, or -EAGAIN when nothing was
// waiting. Otherwise as Send: b belongs to the kernel until Submit
// returns. (The load tool reads its many sessions' input this way: one
// io_uring_enter per round instead of one read per session.)
func (r *Ring) Recv(fd int, b []byte, tag uint64) bool {
	return r.queue(opRecv, fd, b, unix.MSG_DONTWAIT, tag)
}

// RecvMsg queues a recvmsg(2) on the socket fd with MSG_DONTWAIT: m's
// buffers receive the data and its control messages (a timestamp, say, with
// SO_TIMESTAMPNS set), and the kernel updates m's Controllen and Flags. As
// Recv otherwise: Res is the number of bytes read; m, its iovecs and its
// control buffer belong to the kernel until Submit returns. (The load tool
// reads the kernel's arrival time of each event this way.)
func (r *Ring) RecvMsg(fd int, m *unix.Msghdr, tag uint64) bool {
	if m == nil || m.Iovlen == 0 {
		return false
	}
	return r.enqueue(slot{tag: tag, hdr: m}, sqe{
		opcode:  opRecvMsg,
		fd:      int32(fd),
		addr:    uint64(uintptr(unsafe.Pointer(m))),
		len:     1,
		opFlags: unix.MSG_DONTWAIT,
	})
}

func (r *Ring) send(fd int, b []byte, msgFlags uint32, tag uint64) bool {
	return r.queue(opSend, fd, b, msgFlags, tag)
}

func (r *Ring) queue(op uint8, fd int, b []byte, msgFlags uint32, tag uint64) bool {
	if len(b) == 0 {
		return false
	}
	return r.enqueue(slot{tag: tag, buf: b}, sqe{
		opcode:  op,
		fd:      int32(fd),
		addr:    uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))),
		len:     uint32(min(len(b), 1<<31-1)),
		opFlags: msgFlags,
	})
}

// enqueue takes a free slot for s (which holds what the kernel reads or
// writes until the completion) and writes e for it, tagged with the slot.
// It returns false, and queues nothing, when the ring is broken or full.
func (r *Ring) enqueue(s slot, e sqe) bool {
	if r.broken != nil || len(r.free) == 0 {
		return false
	}
	id := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	s.busy = true
	r.slots[id] = s
	e.userData = uint64(id)
	r.push(e)
	r.queued++
	return true
}

// push writes an SQE at our tail; Submit publishes the tail.
func (r *Ring) push(e sqe) {
	r.sqes[r.tail&r.sqMask] = e
	r.tail++
}

// unsubmitted returns the SQEs written but not yet consumed by the kernel.
func (r *Ring) unsubmitted() uint32 { return r.tail - atomic.LoadUint32(r.sqHead) }

// Submit submits every queued send and returns their completions, in no
// particular order, once each has completed: normally one io_uring_enter
// (retried on EINTR, and while the kernel is short of resources). The
// slice is the ring's and valid until the next Submit; the buffers of the
// sends are released to the caller.
//
// If io_uring_enter fails otherwise (which a correct ring never sees), or
// keeps failing with EAGAIN or EBUSY, completing nothing, for Timeout (1 s
// if unset; retried meanwhile every againPause), the ring breaks: Submit returns an error together with a completion for
// every send, -ECANCELED for those the kernel never took and -EIO for
// those it took without completing (their bytes may or may not have been
// sent: the caller must give up the connection, and not reuse the buffer:
// the ring keeps it).
func (r *Ring) Submit() ([]Completion, error) {
	r.done = r.done[:0]
	n := r.queued
	r.queued = 0
	if n == 0 {
		return r.done, nil
	}
	atomic.StoreUint32(r.sqTail, r.tail) // publish the SQEs (release)
	outstanding := n                     // sends without a completion
	cancels := 0                         // cancel requests without a completion
	// An enter that submits returns the number submitted, not -ETIME,
	// when its wait times out: the deadline tells that timeout apart.
	var start time.Time
	timed := r.features&featExtArg != 0 && r.Timeout > 0
	if timed {
		start = time.Now()
	}
	var againSince time.Time // EAGAIN or EBUSY, with nothing completed, since then
	for outstanding > 0 || cancels > 0 {
		toSubmit := r.unsubmitted()
		flags := uintptr(enterGetEvents)
		var argp, argsz uintptr
		if timed {
			r.ts = kernelTimespec{sec: int64(r.Timeout / time.Second), nsec: int64(r.Timeout % time.Second)}
			r.arg = getEventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.ts)))}
			flags |= enterExtArg
			argp, argsz = uintptr(unsafe.Pointer(&r.arg)), unsafe.Sizeof(r.arg)
		}
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit),
			uintptr(outstanding+cancels), flags, argp, argsz)
		runtime.KeepAlive(r)
		r.enters++
		got, gotCancels := r.reap()
		outstanding -= got
		cancels -= gotCancels
		if errno == 0 && timed && outstanding > 0 && toSubmit > 0 && time.Since(start) >= r.Timeout {
			errno = unix.ETIME // the wait timed out; the kernel reported the submission instead
		}
		switch errno {
		case 0, unix.EINTR:
			// EINTR: a signal (the Go runtime preempts with SIGURG). Go
			// round again.
			againSince = time.Time{}
		case unix.EAGAIN, unix.EBUSY:
			// The kernel is short of memory or has completions to flush
			// first: go round again, but not for ever. Before, these were
			// retried without bound, and a kernel that kept refusing held
			// the loop spinning here, its connections never served again.
			if got > 0 || gotCancels > 0 {
				againSince = time.Time{}
				break
			}
			now := time.Now()
			if againSince.IsZero() {
				againSince = now
			} else if now.Sub(againSince) >= r.againLimit() {
				return r.fail(fmt.Errorf("io_uring_enter: %w for %v", errno, now.Sub(againSince).Round(time.Millisecond)))
			}
			time.Sleep(againPause)
		case unix.ETIME:
			if outstanding > 0 && cancels == 0 && r.unsubmitted() == 0 {
				cancels = r.cancelOutstanding()
				atomic.StoreUint32(r.sqTail, r.tail)
			}
		default:
			return r.fail(fmt.Errorf("io_uring_enter: %w", errno))
		}
	}
	return r.done, nil
}

// againPause is how long Submit waits before it retries an io_uring_enter
// refused with EAGAIN or EBUSY that completed nothing.
const againPause = 50 * time.Microsecond

// againLimit is how long Submit retries io_uring_enter calls refused with
// EAGAIN or EBUSY, completing nothing, before the ring breaks.
func (r *Ring) againLimit() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return time.Second
}

// reap moves the available completions into r.done and returns how many
// sends and cancel requests completed.
func (r *Ring) reap() (sends, cancels int) {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail) // acquire: the CQEs before it are written
	for ; head != tail; head++ {
		c := r.cqes[head&r.cqMask]
		if c.userData&cancelBit != 0 {
			cancels++
			continue
		}
		s := &r.slots[c.userData]
		if !s.busy || s.done {
			continue // not ours (a stale completion); never expected
		}
		r.done = append(r.done, Completion{Tag: s.tag, Res: c.res})
		sends++
		// The kernel is done with the buffer: the slot is free at once
		// (nothing is queued before Submit returns). Before, release
		// walked every slot of the ring after each Submit, Cap (1,024)
		// of them for a batch of two sends.
		*s = slot{}
		r.free = append(r.free, uint32(c.userData))
	}
	atomic.StoreUint32(r.cqHead, head) // release: the kernel may reuse the entries
	return sends, cancels
}

// cancelOutstanding queues a cancel request for every send submitted and
// not completed, and returns how many.
func (r *Ring) cancelOutstanding() int {
	n := 0
	for id := range r.slots {
		s := &r.slots[id]
		if s.busy && !s.done {
			r.push(sqe{opcode: opAsyncCancel, fd: -1, addr: uint64(id), userData: cancelBit | uint64(id)})
			r.stalls++
			n++
		}
	}
	return n
}

// release frees the slots that fail completed (reap frees the others as
// it reaps them).
func (r *Ring) release() {
	for id := range r.slots {
		if s := &r.slots[id]; s.busy && s.done {
			*s = slot{}
			r.free = append(r.free, uint32(id))
		}
	}
}

// fail breaks the ring after a failed io_uring_enter: see Submit.
func (r *Ring) fail(err error) ([]Completion, error) {
	r.broken = err
	never := r.unsubmitted()
	// The last `never` SQEs were not consumed: take them back.
	r.tail -= never
	atomic.StoreUint32(r.sqTail, r.tail)
	notTaken := map[uint64]bool{}
	for i := uint32(0); i < never; i++ {
		e := &r.sqes[(r.tail+i)&r.sqMask]
		if e.userData&cancelBit == 0 {
			notTaken[e.userData] = true
		}
	}
	for id := range r.slots {
		s := &r.slots[id]
		if !s.busy || s.done {
			continue
		}
		res := -int32(unix.EIO)
		if notTaken[uint64(id)] {
			res = -int32(unix.ECANCELED)
		}
		r.done = append(r.done, Completion{Tag: s.tag, Res: res})
		if res == -int32(unix.ECANCELED) {
			s.done = true
		} else {
			s.busy = false // the kernel may still read the buffer: keep it referenced
		}
	}
	r.release()
	return r.done, err
}
