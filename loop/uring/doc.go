// Package uring sends batches of buffers to sockets through io_uring: one
// io_uring_enter submits a send per connection and reaps every
// completion. It is written on golang.org/x/sys/unix (raw io_uring_setup,
// io_uring_enter and io_uring_register; the SQ and CQ rings and the SQE
// array mapped with mmap; the ring heads and tails read and written with
// sync/atomic, which orders them as the kernel requires).
//
// It does sends only, with MSG_DONTWAIT so that each completes inside the
// enter that submits it (what the socket takes now, or -EAGAIN): the
// caller keeps its buffers unchanged until Submit returns, and then owns
// them again. Event loops (package loop, the bench forwarder) use it for
// the writes of a round; reading stays with epoll.
//
// On systems without a usable io_uring (not Linux, a kernel before 5.6,
// io_uring disabled by sysctl or blocked by seccomp) New and Probe return
// an error that says why, and the caller keeps to write(2).
package uring
