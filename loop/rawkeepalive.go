package loop

import (
	"math"
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
// router's first PING. Until the peer shows it, the kernel watches the
// connection instead, on the same schedule:
//
//   - TCP keepalive: probes from PingInterval of silence, three in
//     PingTimeout, then the connection fails (a dead or unreachable
//     peer). The kernel sends no probe while output waits for the peer,
//     unacknowledged or held back by its closed window, so alone it
//     never caught a peer that had output waiting: a dead one was
//     retransmitted to for tcp_retries2 (about 15 minutes), and a live
//     host whose client stopped reading (a frozen process, a wedged
//     event loop) was held for ever, what the router had queued for it
//     too (measured: a subscriber that stopped reading, 3.5 MB in the
//     kernel and 263 KiB in the router, still held 8 s after a 1 s + 1 s
//     keepalive would have closed it; a WebSocket one was closed in
//     2.1 s). The PING caught both: it waits behind that output.
//   - TCP_USER_TIMEOUT, PingInterval + PingTimeout: the kernel fails the
//     connection when its output has waited that long unacknowledged, or
//     behind a window the peer keeps closed (Linux 5.11 and later; an
//     older kernel resets that wait at each zero-window probe the peer's
//     kernel answers), and with keepalive on, when a probe is unanswered
//     that long after the last thing received. It ends such a peer about
//     when the unanswered PING did (the kernel reports ETIMEDOUT, which
//     closed counts as CloseKeepalive). A peer that reads, however
//     slowly, reopens its window and is not ended by it.
//
// Neither catches a live host whose client stopped reading while nothing
// waits for it (its kernel answers the probes): only a PING would.

// rawPingPayload is the payload of the router's keepalive PING. It is not
// empty: Autobahn|JS 22.11.1's RawSocket transport reads a frame's payload
// from the data that arrives after its header (lib/transport/rawsocket.js,
// Protocol._read and _splitBytes), so it answered an empty PING only when
// the router next sent it something, which a silent session is not sent:
// under RawSocketPings every silent Autobahn|JS RawSocket client was
// closed (keepalive_timeout) at PingInterval + PingTimeout. ASCII, since
// it echoes the payload decoded and encoded again as UTF-8. The PONG's
// payload is not checked (any input shows the peer alive).
const rawPingPayload = "k"

// tcpKeepalive turns the kernel's TCP keepalive on for the connection's
// socket with the keepalive's schedule, and bounds how long its output may
// wait for the peer (above). Errors are ignored (a socket that is not TCP
// has none). Once per RawSocket connection, at its handshake.
func (cn *conn) tcpKeepalive() {
	o := &cn.ls.e.opts
	if o.PingInterval <= 0 {
		return
	}
	// The kernel takes 1 to 32767 seconds (MAX_TCP_KEEPIDLE, _KEEPINTVL):
	// past it the call fails and the kernel's default stays (7200 s).
	secs := func(d time.Duration) int { return min(32767, max(1, int((d+time.Second-1)/time.Second))) }
	fd := cn.c.Fd()
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs(o.PingInterval))
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs(o.PingTimeout/3))
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	ms := min(int64(math.MaxInt32), int64((o.PingInterval+o.PingTimeout)/time.Millisecond))
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(ms))
}
