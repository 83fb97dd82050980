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
// is full. The sparing ends with the output ahead of the ping: a peer
// whose TCP had acknowledged the ping at the last judgement has had a
// whole timeout to answer it, and is closed whatever it has taken since
// (events behind the ping). Before, each 16 KiB taken in a timeout spared
// it again, so a peer that never answers pings was kept for as long as
// it read. Before, the ping's timeout closed it (keepalive_timeout, with
// a reset) whatever it took meanwhile: a 4 MiB result read at 50 KiB/s by
// a caller silent for the 30 s interval was cut 40 s in, about half read.
// The cost is an ioctl (SIOCOUTQ) per ping, and a getsockopt per ping
// with output ahead of it and per timeout judged: keepalive rounds only,
// never the message path.

// ackedBehind returns the bytes the peer's TCP has acknowledged when
// output waits for the peer (in the connection's buffers, gnet's or the
// kernel's), 0 when none does or the kernel does not say; and where in
// the connection's output a ping queued now starts (those bytes plus the
// output waiting).
func (cn *conn) ackedBehind() (acked, at int64) {
	left := cn.unsent()
	if left == 0 {
		return 0, 0
	}
	acked = cn.acked()
	// A waiting pong (pong.go) counts in the backlog but is queued behind
	// the ping, once the backlog is under high_water.
	return acked, acked + left - int64(len(cn.pong))
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
// since it was sent (or since the last time this said so), and had not
// yet taken the ping then.
func (cn *conn) readingBehindPing() bool {
	if cn.closeLeft == 0 || cn.closeLeft > cn.closeBy {
		return false
	}
	acked := cn.acked()
	if acked-cn.closeLeft < lingerProgress {
		return false
	}
	cn.closeLeft = acked
	return true
}
