package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The Host check, against DNS rebinding: a web page on attacker.example
// whose name the attacker's DNS then points at the gateway's address (on
// loopback, or on the LAN the browser is on) reads the gateway's answers
// as its own origin's. Its requests carry no Origin header when they are
// same-origin GETs (refuseOrigins does not see them), but they name the
// attacker's host. So a request must name a host the gateway answers
// for: an IP address, localhost (browsers resolve it, and *.localhost,
// to loopback themselves), or a name of Options.Hosts or KnownHosts.
//
// Which requests are checked: with Options.Hosts set, all; without it,
// those that arrive on a loopback address (a gateway on loopback, the
// default, is reached by name only through a reverse proxy, which then
// must be named), so that a LAN gateway reached by its mDNS or DNS name
// works unconfigured. "*" in Hosts checks nothing.

// hostPolicy is the compiled Host check; nil checks nothing.
type hostPolicy struct {
	everywhere bool                // Hosts was set: check every request
	exact      map[string]struct{} // lower-case names
	suffixes   []string            // ".example.com" of "*.example.com"
	logged     atomic.Int64        // when the last refusal was logged (nanos: Server.nanos)
}

func newHostPolicy(hosts, known []string) (*hostPolicy, []error) {
	p := &hostPolicy{everywhere: len(hosts) > 0, exact: map[string]struct{}{}}
	var errs []error
	anyHost := false
	for i, h := range hosts {
		switch h = normHost(h); {
		case h == "*":
			anyHost = true
		case !p.add(h):
			errs = append(errs, fieldErr("not a host name: "+strconv.Quote(h)+" (a name, *.name, or *; no port)", "hosts", i))
		}
	}
	for _, h := range known {
		p.add(normHost(h)) // an IP address is allowed anyway
	}
	if anyHost {
		return nil, errs
	}
	return p, errs
}

func normHost(h string) string { return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), ".")) }

// add allows name h ("*.name" for the names below it), and reports
// whether h is one.
func (p *hostPolicy) add(h string) bool {
	switch {
	case strings.HasPrefix(h, "*.") && validHostName(h[2:]):
		p.suffixes = append(p.suffixes, h[1:])
	case validHostName(h):
		p.exact[h] = struct{}{}
	default:
		return false
	}
	return true
}

func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return !strings.Contains(h, "..") && h[0] != '.'
}

// hostName returns the name part of a Host header (the port and an IPv6
// literal's brackets taken off), lower case.
func hostName(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[1:i]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		host = host[:i]
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// allowed reports whether a request naming host may be served (no Host at
// all is an HTTP/1.0 client's, never a browser's).
func (p *hostPolicy) allowed(host string) bool {
	h := hostName(host)
	if h == "" || h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if _, ok := p.exact[h]; ok {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(h, s) {
			return true
		}
	}
	return false
}

// checks reports whether a request that arrived on local is checked.
func (p *hostPolicy) checks(local net.Addr) bool {
	if p.everywhere {
		return true
	}
	a, ok := local.(*net.TCPAddr)
	return !ok || a.IP.IsLoopback()
}

// refuse answers a request whose Host the gateway does not answer for, and
// reports whether it did.
func (g *Server) refuseHost(w http.ResponseWriter, r *http.Request) bool {
	p := g.hosts
	if p == nil || p.allowed(r.Host) {
		return false
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !p.checks(local) {
		return false
	}
	if now := g.nanos(); p.logged.Load() < now-int64(10*time.Second) {
		p.logged.Store(now)
		g.log.Warn("gateway: refused a request naming a host it does not answer for (DNS rebinding?); if a reverse proxy sends this name, list it in gateway.hosts", "host", r.Host, "path", r.URL.Path, "remote", r.RemoteAddr)
	}
	writeProblem(w, newProblem(http.StatusForbidden, proto.URINotAuthorized, "requests for host "+strconv.Quote(hostName(r.Host))+" are not served here (gateway.hosts)"))
	return true
}

// laneHostOK reports whether the event loop may serve a request naming
// host itself: the lane does not know the local address, so a name the
// policy does not allow goes to net/http, which decides.
func (g *Server) laneHostOK(host string) bool {
	return g.hosts == nil || g.hosts.allowed(host)
}
