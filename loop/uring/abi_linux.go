//go:build linux

package uring

import "unsafe"

// The kernel's io_uring ABI (include/uapi/linux/io_uring.h), the parts a
// ring of sends needs. x/sys/unix has the syscall numbers only.

// Setup flags (io_uring_params.flags).
const (
	setupClamp       = 1 << 4 // clamp entries to the kernel's maximum (5.6)
	setupSubmitAll   = 1 << 7 // keep submitting after an SQE fails at submission (5.18)
	setupCoopTaskrun = 1 << 8 // no IPI to run task work on completion (5.19)
)

// Features (io_uring_params.features).
const (
	featSingleMmap = 1 << 0 // SQ and CQ rings share one mapping (5.4)
	featNoDrop     = 1 << 1 // completions are never dropped on CQ overflow (5.5)
	featExtArg     = 1 << 8 // io_uring_enter takes a timeout (5.11)
)

// io_uring_enter flags.
const (
	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3
)

// Opcodes.
const (
	opRecvMsg     = 10 // 5.3
	opAsyncCancel = 14 // 5.5
	opSend        = 26 // 5.6
	opRecv        = 27 // 5.6
)

// io_uring_register opcodes.
const registerProbe = 8 // 5.6

// Offsets of the mappings (mmap's offset argument).
const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

// sqe is a submission queue entry (64 bytes).
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32 // msg_flags for sends
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	pad         uint64
}

// cqe is a completion queue entry (16 bytes).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// getEventsArg is io_uring_enter's argument with enterExtArg.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWait   uint32
	ts        uint64 // *kernelTimespec
}

type kernelTimespec struct {
	sec, nsec int64
}

// probe is io_uring_probe followed by room for every opcode up to 255.
type probe struct {
	lastOp uint8
	opsLen uint8
	resv   uint16
	resv2  [3]uint32
	ops    [256]probeOp
}

type probeOp struct {
	op    uint8
	resv  uint8
	flags uint16
	resv2 uint32
}

const opSupported = 1 << 0

// The layouts must match the kernel's byte for byte.
var _ = [1]struct{}{}[unsafe.Sizeof(params{})-120]
var _ = [1]struct{}{}[unsafe.Sizeof(sqe{})-64]
var _ = [1]struct{}{}[unsafe.Sizeof(cqe{})-16]
var _ = [1]struct{}{}[unsafe.Sizeof(getEventsArg{})-24]
var _ = [1]struct{}{}[unsafe.Offsetof(sqe{}.userData)-32]
