package loop

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/edgewamp/edgewamp/proto/forwarded"
)

// Connections per client address (Options.MaxConnsPerAddress).
//
// max_connections and the open-file budget bound the connections of a
// listener and of the router, not who holds them: one client address
// could take them all, and every other client's connection was refused.
// The acceptor counts each connection of a WAMP listener (WebSocket,
// RawSocket, TLS or not) under its client's source — its IPv4 address, or
// the /64 of its IPv6 address, as the TLS handshake bound keys them
// (clientSource) — as it accepts it, before it hands it to a loop; past
// the bound the connection is closed there and then, unanswered, before
// any protocol work (CloseConnsPerAddress). The count is released exactly
// once, where the connection's descriptor count is (e.fds): by the
// acceptor when the connection never reaches a loop, by OnOpen when it
// refuses it, and by closed (close.go) for every connection OnOpen kept,
// whatever closes it.
//
// The HTTP lane's connections (the gateway's port) are not counted: they
// count in the gateway's max_connections, and a connection handed to
// net/http leaves the loop, where no count could follow it (the gateway
// bounds the requests of one address, max_in_flight_per_address).

// errConnsPerAddress is CloseConnsPerAddress's detail.
var errConnsPerAddress = errors.New("loop: too many connections open from this address")

// addrShrinkMin is the size from which addrConns' map is made anew once
// it holds an eighth of its peak (Go maps do not shrink: after a flood
// from many addresses the table would stay at its peak).
const addrShrinkMin = 4096

// addrConns counts the open connections of each client source that has
// any (deleted at zero), so the table holds at most one entry per open
// connection. Safe for concurrent use: the acceptors take, the loops
// release.
type addrConns struct {
	max  int // static after New; 0: no bound, nothing counted
	mu   sync.Mutex
	n    map[netip.Addr]int
	peak int // len(n)'s largest since n was made
	bad  int // releases of nothing counted: a bug of ours (tests look)
}

// take counts a connection from src, or reports false when src has max
// open already. A source that is not an IP address (the zero Addr) is
// not counted.
func (a *addrConns) take(src netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == nil {
		a.n = make(map[netip.Addr]int)
	}
	k := a.n[src]
	if k >= a.max {
		return false
	}
	a.n[src] = k + 1
	a.peak = max(a.peak, len(a.n))
	return true
}

// release gives back a connection take counted.
func (a *addrConns) release(src netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := a.n[src]
	switch {
	case k > 1:
		a.n[src] = k - 1
		return
	case k == 1:
		delete(a.n, src)
	default:
		a.bad++ // released twice: a bug of ours, which tests look for (a panic would stop the loop)
		return
	}
	if a.peak >= addrShrinkMin && len(a.n) <= a.peak/8 {
		m := make(map[netip.Addr]int, len(a.n))
		for s, k := range a.n {
			m[s] = k
		}
		a.n, a.peak = m, len(m)
	}
}

// open returns the connections counted for src, and all of them.
func (a *addrConns) open(src netip.Addr) (n, total int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range a.n {
		total += k
	}
	return a.n[src], total
}

// takeAddr returns the source of a connection from remote (the TLS
// handshake bound's too) and counts the connection under it, for a WAMP
// listener when the engine bounds them, saying whether it did; ok is
// false when the source has MaxConnsPerAddress open already. A
// connection from one of the listener's TrustedProxies is not counted
// here (proxied): its upgrade counts it under its client (proxy.go).
func (e *Engine) takeAddr(ln *listenerState, remote net.Addr) (src netip.Addr, counted, proxied, ok bool) {
	src = clientSource(remote)
	if ln.cfg.Transport == HTTPLane || !src.IsValid() {
		return src, false, false, true
	}
	if len(ln.cfg.TrustedProxies) > 0 && forwarded.Trusted(peerIP(remote), ln.cfg.TrustedProxies) {
		return src, false, true, true
	}
	if e.perAddr.max <= 0 {
		return src, false, false, true
	}
	if !e.perAddr.take(src) {
		return src, false, false, false
	}
	return src, true, false, true
}

// refuseAddr closes c, refused for MaxConnsPerAddress at accept: counted
// under the listener's CloseConnsPerAddress, logged at most once per
// source per srcLogEvery (and within the close log's rate).
func (e *Engine) refuseAddr(ln *listenerState, c net.Conn, src netip.Addr) {
	c.Close()
	e.logRefusedAddr(c.RemoteAddr().String(), src)
	ln.closes[CloseConnsPerAddress].Add(1) // after the log line, as closes are
}

func (e *Engine) logRefusedAddr(remote string, src netip.Addr) {
	ctx := context.Background()
	if !e.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	now := e.monotime()
	if !e.addrLogs.take(src, now) {
		e.closeLogs.skip()
		return
	}
	suppressed, ok := e.closeLogs.take(now)
	if !ok {
		return
	}
	attrs := make([]slog.Attr, 0, 5)
	attrs = append(attrs, slog.String("remote", remote), slog.String("reason", CloseConnsPerAddress.String()),
		slog.String("detail", errConnsPerAddress.Error()), slog.Int("max_connections_per_address", e.perAddr.max))
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("close_logs_suppressed", suppressed))
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, "connection closed", attrs...)
}
