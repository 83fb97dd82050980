package loop

import (
	"time"

	"golang.org/x/sys/unix"
)

// RawSocket keepalive. The router pings a silent session (PingInterval)
// and closes it when nothing comes back (PingTimeout). A RawSocket peer
// gets the RawSocket PING only once it has shown that it takes the frame
// type, by sending a PING or a PONG of its own (conn.rawPings):
// Autobahn|Python's asyncio RawSocket protocol, the reference client,
// implements neither (autobahn/asyncio/rawsocket.py, 22.7.1:
// PrefixProtocol.ping raises NotImplementedError, which asyncio makes a
// fatal error of the transport), and its Twisted one reads the frame type
// as part of the length (Int32StringReceiver). Before, every such client
// silent for PingInterval (30 s by default) lost its connection at the
// router's first PING. Until the peer shows it, the kernel's TCP
// keepalive watches the connection instead, on the same schedule: probes
// from PingInterval of silence, three in PingTimeout, then the connection
// fails (a dead or unreachable peer; unlike a PING, it does not catch a
// live host whose client stopped reading, which the output bounds do).

// tcpKeepalive turns the kernel's TCP keepalive on for the connection's
// socket with the keepalive's schedule. Errors are ignored (a socket that
// is not TCP has none). Once per RawSocket connection, at its handshake.
func (cn *conn) tcpKeepalive() {
	o := &cn.ls.e.opts
	if o.PingInterval <= 0 {
		return
	}
	secs := func(d time.Duration) int { return max(1, int((d+time.Second-1)/time.Second)) }
	fd := cn.c.Fd()
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs(o.PingInterval))
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs(o.PingTimeout/3))
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
}
