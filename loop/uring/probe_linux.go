//go:build linux

package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Probe reports whether io_uring sends work on this system, the way the
// loops use them: it sets up a small ring, checks that the kernel has
// IORING_OP_SEND and IORING_OP_ASYNC_CANCEL (5.6), and sends through it on
// a socketpair: a send must complete within its io_uring_enter with the
// bytes the socket takes, and with -EAGAIN once the socket is full (a
// kernel that parked it instead would stall a loop). It returns nil, or an
// error that says why not: no io_uring in the kernel, io_uring blocked
// (sysctl kernel.io_uring_disabled, a seccomp filter such as Docker's
// default profile), RLIMIT_MEMLOCK too low for the ring (kernels before
// 5.12), a kernel too old. Safe for concurrent use; it takes a few
// hundred microseconds.
func Probe() error {
	r, err := New(8)
	if err != nil {
		return err
	}
	defer r.Close()
	if r.features&featNoDrop == 0 {
		return errors.New("io_uring: kernel older than 5.5 (no IORING_FEAT_NODROP)")
	}
	var pr probe
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerProbe,
		uintptr(unsafe.Pointer(&pr)), uintptr(len(pr.ops)), 0, 0)
	if errno != 0 {
		return fmt.Errorf("io_uring: opcode probe: %w (kernel older than 5.6: no IORING_OP_SEND)", errno)
	}
	for _, op := range []uint8{opSend, opAsyncCancel} {
		if pr.lastOp < op || pr.ops[op].flags&opSupported == 0 {
			return fmt.Errorf("io_uring: the kernel does not support opcode %d (IORING_OP_SEND needs 5.6)", op)
		}
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("io_uring probe: socketpair: %w", err)
	}
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	msg := []byte("probe")
	if res, err := r.probeSend(sp[0], msg); err != nil {
		return err
	} else if res != int32(len(msg)) {
		return fmt.Errorf("io_uring probe: a send to a socket with room returned %d, want %d", res, len(msg))
	}
	// Fill the socket, then send again: EAGAIN at once, or the kernel
	// parks sends (no MSG_DONTWAIT support) and the ring is unusable.
	unix.SetsockoptInt(sp[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	fill := make([]byte, 4096)
	for i := 0; ; i++ {
		if _, err := unix.Write(sp[0], fill); err == unix.EAGAIN {
			break
		} else if err != nil || i > 1<<14 {
			return fmt.Errorf("io_uring probe: filling a socketpair: %v", err)
		}
	}
	res, err := r.probeSend(sp[0], msg)
	if err != nil {
		return err
	}
	if res != -int32(unix.EAGAIN) {
		return fmt.Errorf("io_uring probe: a MSG_DONTWAIT send to a full socket returned %d, want -EAGAIN", res)
	}
	return nil
}

// probeSend sends b to fd through the ring without waiting in the kernel
// (a send that parks must not hang the probe): it submits, then looks for
// the completion for up to 200 ms. On a timeout the ring is left with a
// parked send: the caller closes it, which cancels the send.
func (r *Ring) probeSend(fd int, b []byte) (int32, error) {
	if !r.Send(fd, b, 1) {
		return 0, errors.New("io_uring probe: ring full")
	}
	r.queued = 0
	atomic.StoreUint32(r.sqTail, r.tail)
	deadline := time.Now().Add(200 * time.Millisecond)
	for {
		toSubmit := r.unsubmitted()
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), 0, 0, 0, 0)
		if errno != 0 && errno != unix.EINTR && errno != unix.EAGAIN && errno != unix.EBUSY {
			return 0, fmt.Errorf("io_uring probe: io_uring_enter: %w", errno)
		}
		r.done = r.done[:0]
		if got, _ := r.reap(); got > 0 {
			return r.done[0].Res, nil
		}
		if time.Now().After(deadline) {
			r.broken = errors.New("io_uring probe: send parked")
			return 0, errors.New("io_uring probe: a MSG_DONTWAIT send did not complete within its io_uring_enter (kernel parks sends)")
		}
		time.Sleep(time.Millisecond)
	}
}
