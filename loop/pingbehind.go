package loop

import "golang.org/x/sys/unix"

// A keepalive ping is queued behind the connection's output: a peer still
// reading a large result, or events, over a slow link reaches it only once
// it has read what is ahead of it, and may take longer than PingTimeout
// to. Such a peer is alive; one that has taken at least lingerProgress
// bytes (acknowledged by its TCP: TCP_INFO's tcpi_bytes_acked, which new
// output does not hide, as it would a backlog's fall) since the ping, or
// since the last such judgement, waits another PingTimeout for its pong.
// A peer that takes nothing is closed at the timeout as before, and one
// whose application stopped reading is once its kernel's receive buffer
// is full. Before, the ping's timeout closed it (keepalive_timeout, with
// a reset) whatever it took meanwhile: a 4 MiB result read at 50 KiB/s by
// a caller silent for the 30 s interval was cut 40 s in, about half read.
// The cost is an ioctl (SIOCOUTQ) per ping, and a getsockopt per ping
// with output ahead of it and per timeout judged: keepalive rounds only,
// never the message path.

// ackedBehind returns the bytes the peer's TCP has acknowledged when
// output waits for the peer (in the connection's buffers, gnet's or the
// kernel's), 0 when none does or the kernel does not say.
func (cn *conn) ackedBehind() int64 {
	if cn.unsent() == 0 {
		return 0
	}
	return cn.acked()
}

// acked returns the bytes the peer's TCP has acknowledged on the
// connection (0 when the kernel does not say).
func (cn *conn) acked() int64 {
	ti, err := unix.GetsockoptTCPInfo(cn.c.Fd(), unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0
	}
	return int64(ti.Bytes_acked)
}

// readingBehindPing reports, at an unanswered ping's timeout, whether the
// peer has taken lingerProgress bytes of the output ahead of the ping
// since it was sent (or since the last time this said so).
func (cn *conn) readingBehindPing() bool {
	if cn.closeLeft == 0 {
		return false
	}
	acked := cn.acked()
	if acked-cn.closeLeft < lingerProgress {
		return false
	}
	cn.closeLeft = acked
	return true
}
