package loop

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
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
// Only the last proxyMaxEntries entries of the headers are looked at
// (the proxies append on the right; what the client sent is on the left),
// each at most proxyMaxEntry bytes: the header itself is within
// MaxHandshake.

const (
	proxyMaxEntries = 16
	proxyMaxEntry   = 64
	proxyLogEvery   = 10 * time.Second
)

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

// sourceOf is clientSource for an address: IPv4 as is, IPv6 its /64.
func sourceOf(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is4() {
		return ip
	}
	p, _ := ip.WithZone("").Prefix(64)
	return p.Addr()
}

// trustedIn reports whether ip is in one of the prefixes.
func trustedIn(ip netip.Addr, trusted []netip.Prefix) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// proxyItems keeps the last proxyMaxEntries entries of a list header.
type proxyItems struct {
	ring [proxyMaxEntries][]byte
	n    int // entries seen
}

func (r *proxyItems) add(b []byte) {
	r.ring[r.n%proxyMaxEntries] = b
	r.n++
}

// last returns the i-th entry from the right (0: the rightmost), or nil
// past the kept ones.
func (r *proxyItems) last(i int) ([]byte, bool) {
	if i >= r.n || i >= proxyMaxEntries {
		return nil, false
	}
	return r.ring[(r.n-1-i)%proxyMaxEntries], true
}

// splitList adds the comma-separated items of v to r, commas inside a
// quoted string (RFC 9110 §5.6.4) not splitting.
func splitList(v []byte, r *proxyItems) {
	quoted, esc, start := false, false, 0
	for i, c := range v {
		switch {
		case esc:
			esc = false
		case quoted && c == '\\':
			esc = true
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			r.add(trimOWS(v[start:i]))
			start = i + 1
		}
	}
	r.add(trimOWS(v[start:]))
}

// forwardedClient returns the client a trusted proxy names in the request
// header hdr (which ends with CRLFCRLF and passed parseHTTPRequest), and
// why it names none.
func forwardedClient(hdr []byte, trusted []netip.Prefix) (client netip.AddrPort, why string) {
	var xff, fwd proxyItems
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
			splitList(value, &xff)
		case equalFold(name, "Forwarded"):
			splitList(value, &fwd)
		}
	}
	items, node := &xff, func(b []byte) []byte { return b }
	switch {
	case xff.n > 0:
	case fwd.n > 0:
		items, node = &fwd, forwardedFor
	default:
		return netip.AddrPort{}, "no X-Forwarded-For or Forwarded header"
	}
	for i := 0; ; i++ {
		b, ok := items.last(i)
		if !ok {
			if i >= proxyMaxEntries {
				return netip.AddrPort{}, "the last " + strconv.Itoa(proxyMaxEntries) + " entries name trusted proxies only"
			}
			return netip.AddrPort{}, "the header names trusted proxies only"
		}
		ap, ok := parseNode(node(b))
		if !ok {
			return netip.AddrPort{}, "unparsable client address " + strconv.Quote(string(b[:min(len(b), proxyMaxEntry)]))
		}
		if !trustedIn(ap.Addr(), trusted) {
			return ap, ""
		}
	}
}

// forwardedFor returns the value of the for= parameter of one RFC 7239
// forwarded-element (pairs separated by ';'), unquoted; nil when it has
// none.
func forwardedFor(elem []byte) []byte {
	for len(elem) > 0 {
		var pair []byte
		quoted, end := false, len(elem)
		for i, c := range elem {
			if c == '"' {
				quoted = !quoted
			} else if c == ';' && !quoted {
				end = i
				break
			}
		}
		pair, elem = trimOWS(elem[:end]), elem[min(end+1, len(elem)):]
		eq := bytes.IndexByte(pair, '=')
		if eq < 0 || !equalFold(pair[:eq], "for") {
			continue
		}
		v := pair[eq+1:]
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
			if bytes.IndexByte(v, '\\') >= 0 || bytes.IndexByte(v, '"') >= 0 {
				return nil // escapes have no place in an address
			}
		}
		return v
	}
	return nil
}

// parseNode parses a client address as proxies write it: an IPv4 or IPv6
// address, optionally with a port (1.2.3.4:80, [2001:db8::1]:80), an IPv6
// address in brackets. IPv4-mapped addresses are taken as IPv4; a zone,
// "unknown", an obfuscated identifier (_hidden) or anything else is not
// an address.
func parseNode(b []byte) (netip.AddrPort, bool) {
	if len(b) == 0 || len(b) > proxyMaxEntry {
		return netip.AddrPort{}, false
	}
	s := string(b)
	var ip netip.Addr
	var port uint16
	if a, err := netip.ParseAddr(s); err == nil {
		ip = a
	} else if ap, err := netip.ParseAddrPort(s); err == nil {
		ip, port = ap.Addr(), ap.Port()
	} else if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		a, err := netip.ParseAddr(s[1 : len(s)-1])
		if err != nil || !a.Is6() {
			return netip.AddrPort{}, false
		}
		ip = a
	} else {
		return netip.AddrPort{}, false
	}
	if ip.Zone() != "" {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), port), true
}

// clientAddrString is the remote address of a forwarded client, as
// TransportInfo.RemoteAddr gives it: host:port, or the bare address when
// the proxy gave no port.
func clientAddrString(ap netip.AddrPort) string {
	if ap.Port() == 0 {
		return ap.Addr().String()
	}
	return ap.String()
}

// forwarded runs at the WebSocket upgrade of a trusted proxy's connection
// (cn.proxied): it takes the client's address from the request header
// hdr, and counts the connection under it (MaxConnsPerAddress). It
// reports false when that address has its bound already: the caller
// answers 503 and closes.
func (cn *conn) forwarded(hdr []byte) bool {
	e := cn.ls.e
	client, why := forwardedClient(hdr, cn.ln.cfg.TrustedProxies)
	ip := peerIP(cn.c.RemoteAddr())
	if client.IsValid() {
		cn.via, cn.remote, ip = cn.remote, clientAddrString(client), client.Addr()
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
