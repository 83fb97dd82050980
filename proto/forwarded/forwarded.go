// Package forwarded reads the client address a trusted reverse proxy
// names in X-Forwarded-For or RFC 7239 Forwarded, for the WebSocket
// listeners (loop) and the HTTP gateway (gateway) alike: a wire format,
// under proto, which both may import (.ci/depcheck).
//
// The walk goes from the right (what the nearest proxy appended) to the
// left, skipping the entries that are trusted proxies themselves, and
// stops at the first that is not: the client. Only the last MaxEntries
// entries are kept (a client writes what it likes on the left; the
// proxies append on the right), each at most MaxEntry bytes. An entry
// that is not an address (unknown, an obfuscated _name, a zone, garbage)
// where the walk stops names no client: the caller keeps the proxy's.
package forwarded

import (
	"bytes"
	"net/netip"
	"strconv"
)

const (
	// MaxEntries is how many entries, from the right, are looked at.
	MaxEntries = 16
	// MaxEntry bounds an entry: longer is not an address.
	MaxEntry = 64
)

// List keeps the last MaxEntries entries of a list header. The zero value
// is empty. The entries alias what Add was given.
type List struct {
	ring [MaxEntries][]byte
	n    int // entries seen
}

func (r *List) add(b []byte) {
	r.ring[r.n%MaxEntries] = b
	r.n++
}

// Len is how many entries were added.
func (r *List) Len() int { return r.n }

// last returns the i-th entry from the right (0: the rightmost), or false
// past the kept ones.
func (r *List) last(i int) ([]byte, bool) {
	if i >= r.n || i >= MaxEntries {
		return nil, false
	}
	return r.ring[(r.n-1-i)%MaxEntries], true
}

// AddPlain adds the comma-separated entries of one X-Forwarded-For line's
// value. X-Forwarded-For has no quoted strings: every comma splits, so
// that a '"' a client wrote on the left cannot make the entry its proxy
// appended on the right part of its own (the proxy's entry then went
// unread, and the client took the proxy's address). Call it for each
// line of the header, in order.
func (r *List) AddPlain(v []byte) {
	for {
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			r.add(TrimOWS(v))
			return
		}
		r.add(TrimOWS(v[:i]))
		v = v[i+1:]
	}
}

// Add adds the comma-separated elements of one Forwarded line's value,
// commas inside a quoted string (RFC 9110 §5.6.4) not splitting. The
// elements are found from the right, where the proxies append theirs: a
// proxy's elements are well formed, so whatever a client wrote on the
// left (a quote left open, or one paired with a quote of the proxy's
// for="[2001:db8::1]") stays in the client's elements, left of the
// proxy's. Read from the left, a client's `x="` took the proxy's
// element, up to its for="[v6]", into its own, whose for= was read for
// the client's address. Call it for each line of the header, in order.
func (r *List) Add(v []byte) {
	var items [MaxEntries][]byte
	k, end, quoted, more := 0, len(v), false, false
	for i := len(v) - 1; i >= 0 && !more; i-- {
		switch c := v[i]; {
		case c == '"' && !(quoted && escapedAt(v, i)):
			quoted = !quoted
		case c == ',' && !quoted:
			if k == MaxEntries {
				more = true // entries left of these are never looked at
				break
			}
			items[k], end = TrimOWS(v[i+1:end]), i
			k++
		}
	}
	if more {
		r.n++ // counted, never read: the MaxEntries below take every place
	} else if k < MaxEntries {
		items[k] = TrimOWS(v[:end])
		k++
	} else {
		r.n++
	}
	for j := k - 1; j >= 0; j-- {
		r.add(items[j])
	}
}

// escapedAt reports whether the quote at v[i] is escaped: an odd number
// of backslashes before it.
func escapedAt(v []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && v[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// Trusted reports whether ip is in one of the prefixes.
func Trusted(ip netip.Addr, trusted []netip.Prefix) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Client returns the client named by xff (X-Forwarded-For's entries) or,
// when there are none, by fwd (Forwarded's elements), and why none is
// named when it is not. The port is 0 when the proxy gave none.
func Client(xff, fwd *List, trusted []netip.Prefix) (client netip.AddrPort, why string) {
	items, node := xff, func(b []byte) []byte { return b }
	switch {
	case xff.n > 0:
	case fwd.n > 0:
		items, node = fwd, forwardedFor
	default:
		return netip.AddrPort{}, "no X-Forwarded-For or Forwarded header"
	}
	for i := 0; ; i++ {
		b, ok := items.last(i)
		if !ok {
			if i >= MaxEntries {
				return netip.AddrPort{}, "the last " + strconv.Itoa(MaxEntries) + " entries name trusted proxies only"
			}
			return netip.AddrPort{}, "the header names trusted proxies only"
		}
		ap, ok := ParseNode(node(b))
		if !ok {
			return netip.AddrPort{}, "unparsable client address " + strconv.Quote(string(b[:min(len(b), MaxEntry)]))
		}
		if !Trusted(ap.Addr(), trusted) {
			return ap, ""
		}
	}
}

// forwardedFor returns the value of the for= parameter of one RFC 7239
// forwarded-element (pairs separated by ';'), unquoted; nil when it has
// none.
func forwardedFor(elem []byte) []byte {
	for len(elem) > 0 {
		quoted, end := false, len(elem)
		for i, c := range elem {
			if c == '"' {
				quoted = !quoted
			} else if c == ';' && !quoted {
				end = i
				break
			}
		}
		var pair []byte
		pair, elem = TrimOWS(elem[:end]), elem[min(end+1, len(elem)):]
		eq := bytes.IndexByte(pair, '=')
		if eq < 0 || !bytes.EqualFold(pair[:eq], []byte("for")) {
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

// ParseNode parses a client address as proxies write it: an IPv4 or IPv6
// address, optionally with a port (1.2.3.4:80, [2001:db8::1]:80), or an
// IPv6 address in brackets. IPv4-mapped addresses are taken as IPv4; a
// zone, "unknown", an obfuscated identifier (_hidden) or anything else is
// not an address.
func ParseNode(b []byte) (netip.AddrPort, bool) {
	if len(b) == 0 || len(b) > MaxEntry {
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

// AddrString is a client's address as a remote address string
// (http.Request.RemoteAddr, route.TransportInfo.RemoteAddr): host:port,
// or the bare address when the proxy gave no port.
func AddrString(ap netip.AddrPort) string {
	if ap.Port() == 0 {
		return ap.Addr().String()
	}
	return ap.String()
}

// TrimOWS removes leading and trailing spaces and tabs (HTTP's optional
// whitespace), as the header parsers of loop and forwarded need.
func TrimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
