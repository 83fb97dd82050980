package gateway

import (
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto/forwarded"
)

// Trusted reverse proxies (Options.TrustedProxies).
//
// Behind a reverse proxy every request comes from the proxy's address,
// and the gateway keyed its per-address limits on it: max_in_flight_per_
// address, the failed credentials per address, the anonymous retained
// share. A request whose TCP peer is a trusted proxy has its RemoteAddr
// replaced, before anything reads it, by the client the proxy names in
// X-Forwarded-For, else Forwarded (package forwarded's walk, as the
// WebSocket listeners'). A header missing or naming no usable client
// leaves the proxy's address, counted (edgewamp_gateway_proxy_unforwarded_total)
// and logged at most once per proxyLogEvery. Headers from any other
// peer are never read.

// proxyLogEvery is how often at most a request from a trusted proxy that
// names no client is logged.
const proxyLogEvery = 10 * time.Second

// fromProxy replaces r.RemoteAddr with the client a trusted proxy names.
// It runs first on every request, net/http's (dispatch) and the event
// loops' lane's (ServeLane).
func (g *Server) fromProxy(r *http.Request) {
	if len(g.opts.TrustedProxies) == 0 {
		return
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !forwarded.Trusted(ap.Addr(), g.opts.TrustedProxies) {
		return
	}
	var xff, fwd forwarded.List
	for _, v := range r.Header["X-Forwarded-For"] {
		xff.AddPlain([]byte(v))
	}
	for _, v := range r.Header["Forwarded"] {
		fwd.Add([]byte(v))
	}
	client, why := forwarded.Client(&xff, &fwd, g.opts.TrustedProxies)
	if client.IsValid() {
		r.RemoteAddr = forwarded.AddrString(client)
		return
	}
	g.proxyUnforwarded.Add(1)
	now := g.nanos()
	if last := g.proxyLogAt.Load(); last != 0 && now-last < int64(proxyLogEvery) || !g.proxyLogAt.CompareAndSwap(last, now) {
		return
	}
	g.log.Info("gateway: a request from a trusted proxy names no client address: the proxy's address stands for the client (gateway.trusted_proxies)",
		"remote", r.RemoteAddr, "path", r.URL.Path, "reason", why)
}

// proxyState is the Server's part of fromProxy.
type proxyState struct {
	proxyUnforwarded atomic.Uint64 // requests from a trusted proxy that named no client
	proxyLogAt       atomic.Int64  // when the last line was logged (nanos: Server.nanos)
}
