package loop

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto/forwarded"
)

// Trusted reverse proxies (Listener.TrustedProxies).
//
// Behind a reverse proxy every connection comes from the proxy's address,
// and the router keyed everything per client address on it: the
// brute-force limiter, the open challenges, the retained and testament
// shares, MaxConnsPerAddress. On a connection whose TCP peer is a trusted
// proxy the WebSocket upgrade request names the client: the rightmost
// X-Forwarded-For entry that is not itself a trusted proxy (the headers
// joined in order), or, without X-Forwarded-For, the rightmost RFC 7239
// Forwarded for= that is not. That address becomes the connection's
// remote address (TransportInfo.RemoteAddr: what route keys on and the
// meta API shows); a header missing, unparsable (unknown, an obfuscated
// identifier, garbage) where the walk stops, or naming trusted proxies
// only leaves the proxy's address, logged at most once per
// proxyLogEvery, counted in Stats.ProxyUnforwarded.
//
// A trusted proxy's connection is not counted under its address at
// accept (it carries many clients), nor under MaxTLSHandshakesPerAddress
// (its handshake comes before any header): the upgrade counts it under
// the client's address, and answers 503 past MaxConnsPerAddress
// (CloseConnsPerAddress). A RawSocket connection from a trusted proxy
// (no PROXY protocol) keeps the proxy's address and is counted under it
// at its handshake. A peer that is not a trusted proxy has its headers
// never read.
//
// The walk is package forwarded's (the gateway's too): the last 16
// entries, each at most 64 bytes, within MaxHandshake.

// proxyLogEvery is how often at most a trusted proxy's upgrade naming no
// client is logged.
const proxyLogEvery = 10 * time.Second

// proxyLog limits the lines about trusted proxies' connections without a
// client address to one per proxyLogEvery.
type proxyLog struct {
	last       atomic.Int64 // monotime of the last line; 0: none yet
	suppressed atomic.Uint64
}

func (l *proxyLog) take(now int64) (suppressed uint64, ok bool) {
	last := l.last.Load()
	if last != 0 && now-last < int64(proxyLogEvery) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return 0, false
	}
	return l.suppressed.Swap(0), true
}

// peerIP returns the IP address of a TCP peer, IPv4-mapped addresses as
// IPv4, without a zone; the zero Addr for anything else.
func peerIP(remote net.Addr) netip.Addr {
	ta, ok := remote.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Addr{}
	}
	return ip.Unmap().WithZone("")
}

// sourceOf is clientSource for an address: IPv4 as is, IPv6 its /64;
// the zero Addr for the zero Addr.
func sourceOf(ip netip.Addr) netip.Addr {
	if !ip.IsValid() {
		return netip.Addr{}
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip
	}
	p, _ := ip.WithZone("").Prefix(64)
	return p.Addr()
}

// forwardedClient returns the client a trusted proxy names in the request
// header hdr (which ends with CRLFCRLF and passed parseHTTPRequest), and
// why it names none.
func forwardedClient(hdr []byte, trusted []netip.Prefix) (client netip.AddrPort, why string) {
	var xff, fwd forwarded.List
	rest := hdr[:len(hdr)-2]
	_, rest = cutLine(rest) // the request line
	for len(rest) > 0 {
		var line []byte
		line, rest = cutLine(rest)
		name, value, ok := splitField(line)
		if !ok {
			continue
		}
		switch {
		case equalFold(name, "X-Forwarded-For"):
			xff.AddPlain(value)
		case equalFold(name, "Forwarded"):
			fwd.Add(value)
		}
	}
	return forwarded.Client(&xff, &fwd, trusted)
}

// fromProxy runs at the WebSocket upgrade of a trusted proxy's connection
// (cn.proxied): it takes the client's address from the request header
// hdr, and counts the connection under it (MaxConnsPerAddress). It
// reports false when that address has its bound already: the caller
// answers 503 and closes.
func (cn *conn) fromProxy(hdr []byte) bool {
	e := cn.ls.e
	client, why := forwardedClient(hdr, cn.ln.cfg.TrustedProxies)
	ip := peerIP(cn.c.RemoteAddr())
	if client.IsValid() {
		cn.via, cn.remote, ip = cn.remote, forwarded.AddrString(client), client.Addr()
	} else {
		e.proxyUnforwarded.Add(1)
		cn.logUnforwarded(why)
	}
	return cn.countProxied(ip)
}

// countProxied counts a trusted proxy's connection, at its upgrade or
// RawSocket handshake, under the client's address ip (the proxy's when it
// named none), reporting false when ip has MaxConnsPerAddress open.
func (cn *conn) countProxied(ip netip.Addr) bool {
	e := cn.ls.e
	if e.perAddr.max <= 0 || !ip.IsValid() {
		return true
	}
	cn.src = sourceOf(ip) // the close log's per-source limit reads it (close.go)
	if !e.perAddr.take(cn.src) {
		return false
	}
	cn.srcCounted = true
	return true
}

func (cn *conn) logUnforwarded(why string) {
	e := cn.ls.e
	ctx := context.Background()
	if !e.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	suppressed, ok := e.proxyLogs.take(e.monotime())
	if !ok {
		return
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, "upgrade from a trusted proxy names no client address: the proxy's address stands for the client (listeners[].trusted_proxies)",
		slog.String("remote", cn.remote), slog.String("listener", cn.ln.cfg.Addr), slog.String("reason", why),
		slog.Uint64("suppressed", suppressed))
}

// proxyRefusal is the answer to an upgrade from a trusted proxy whose
// client has MaxConnsPerAddress open.
func proxyRefusal() []byte {
	return appendHTTPResponse(nil, http.StatusServiceUnavailable, "too many connections open from this client address\n", false)
}
