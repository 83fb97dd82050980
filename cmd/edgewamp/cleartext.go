package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Credentials that cross a port without TLS. A WAMP ticket (a user's
// password, an OAuth2 access token) is sent as it is in AUTHENTICATE, and
// the gateway's bearer tokens, API keys and the OAuth2 token endpoint's
// passwords and client secrets are sent as they are in each request:
// without TLS, anyone on the path reads them and logs in with them.
// WAMP-CRA and cryptosign send no secret, nor do the gateway's signed
// requests. Not refused (a TLS-terminating reverse proxy on the same host
// forwarding to a listener bound to loopback is a sound setup, and so may
// a private network be): run and check-config say it, one line per port,
// and a reload that changes what is said says it again.

// ticketRealms names the realms that take tickets: "ticket" among their
// authmethods, or, without authmethods, a user with a password or an
// oauth: block (realmConfig.build's default).
func (c *config) ticketRealms() []string {
	var names []string
	for i := range c.Realms {
		r := &c.Realms[i]
		ticket := false
		if len(r.AuthMethods) > 0 {
			for _, m := range r.AuthMethods {
				ticket = ticket || m == "ticket"
			}
		} else {
			ticket = r.OAuth != nil
			for _, u := range r.Users {
				ticket = ticket || u.password() != ""
			}
		}
		if ticket {
			names = append(names, strconv.Quote(r.Name))
		}
	}
	return names
}

// exposedListenAddr reports whether a listen address is reachable from
// other hosts: its host is not loopback (an empty one, 0.0.0.0 and ::
// are every interface).
func exposedListenAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err == nil && testHookExposed != nil && testHookExposed(host) {
		return true
	}
	return err != nil || !loopbackHost(host)
}

// testHookExposed is nil in production builds. Builds with the
// edgewamp_testhooks tag (tests only, testhooks.go) set it to take one
// loopback host as reachable from other hosts, so that a test sees the
// warnings of a router it runs without listening beyond loopback.
var testHookExposed func(host string) bool

// cleartextWarnings says, one line per port, where credentials would
// cross the network in clear text: each WAMP listener without tls on an
// address that is not loopback when a realm takes tickets, and the
// gateway's port without gateway.tls on such an address when it takes
// bearer tokens (gateway.bearer, or the OAuth2 server's, whose token
// endpoint it serves: oauthServed) or API keys. nil when nowhere.
//
// First, one line per such listener, the realms open to whoever reaches it
// (openRealmWarnings), and the gateway's port too when it bridges them:
// the quick start's `-listen 0.0.0.0:8080` on the embedded default served
// the whole meta API to the network unsaid.
func (c *config) cleartextWarnings(oauthServed bool) []string {
	const fix = ", or bind it to 127.0.0.1 behind a reverse proxy that terminates TLS (a sound setup: the credentials then cross the network encrypted), or keep it on a network you trust"
	out := c.openRealmWarnings()
	if realms := c.ticketRealms(); len(realms) > 0 {
		what := "realm " + realms[0] + " takes"
		if len(realms) > 1 {
			what = "realms " + strings.Join(realms, ", ") + " take"
		}
		for i, l := range c.Listeners {
			if l.TLS != nil || !exposedListenAddr(l.Address) {
				continue
			}
			out = append(out, fmt.Sprintf("listeners[%d] %s: without TLS, %s WAMP tickets (passwords, OAuth2 access tokens) that cross the network in clear text: anyone on the path can read them and log in; set listeners[%d].tls (cert, key)%s",
				i, l.Address, what, i, fix))
		}
	}
	g := &c.Gateway
	if c.gatewayOff() || g.TLS != nil || !exposedListenAddr(g.Listen) {
		return out
	}
	var creds []string
	if oauthServed && c.oauthEnabled() {
		creds = append(creds, "OAuth2 passwords, client secrets and tokens (/oauth/token, bearer tokens)")
	}
	if g.Bearer != nil {
		creds = append(creds, "bearer tokens (gateway.bearer)")
	}
	if len(g.APIKeys) > 0 {
		creds = append(creds, "API keys (gateway.api_keys)")
	}
	if len(creds) > 0 {
		out = append(out, fmt.Sprintf("gateway.listen %s: without gateway.tls, %s cross the network in clear text: anyone on the path can read them and use them; set gateway.tls (cert, key)%s",
			g.Listen, strings.Join(creds, ", "), fix))
	}
	return out
}

// openRealmWarnings says, one line per WAMP listener on an address that is
// not loopback, which realms take anonymous clients with security off
// (RBAC off, as in the embedded default): whoever reaches the port may
// call, register, publish and subscribe to any URI and use the whole meta
// API (list every session with its address, end any). nil when none.
func (c *config) openRealmWarnings() []string {
	var open []string
	for i := range c.Realms {
		if r := &c.Realms[i]; !r.Security && r.takesAnonymous() {
			open = append(open, strconv.Quote(r.Name))
		}
	}
	if len(open) == 0 {
		return nil
	}
	what := "realm " + open[0] + " takes anonymous clients with security off"
	if len(open) > 1 {
		what = "realms " + strings.Join(open, ", ") + " take anonymous clients with security off"
	}
	var out []string
	for i, l := range c.Listeners {
		if !exposedListenAddr(l.Address) {
			continue
		}
		out = append(out, fmt.Sprintf("listeners[%d] %s: %s: anyone who reaches the port may call, register, publish and subscribe to any URI and use the whole meta API (list every session with its address, end any); set security: true with roles (start from deploy/edgewamp.yaml), turn anonymous off, or keep the listener on loopback",
			i, l.Address, what))
	}
	return append(out, c.openBridgeWarning()...)
}

// openBridgeWarning is openRealmWarnings for the gateway's port: its
// bridge endpoints serve a realm that takes anonymous clients with
// security off to any request without credentials (POST
// /wamp/{realm}/call/wamp.session.kill_all ends every session). Before,
// only the WAMP listeners were looked at, and `run -gateway-listen
// 0.0.0.0:8081` on the embedded default served it unsaid. nil when the
// gateway is off or on loopback, or bridges no such realm.
func (c *config) openBridgeWarning() []string {
	g := &c.Gateway
	if c.gatewayOff() || !exposedListenAddr(g.Listen) {
		return nil
	}
	var open []string
	for i := range c.Realms {
		if r := &c.Realms[i]; !r.Security && r.takesAnonymous() && (r.HTTPBridge == nil || *r.HTTPBridge) {
			open = append(open, strconv.Quote(r.Name))
		}
	}
	if len(open) == 0 {
		return nil
	}
	what := "realm " + open[0] + " takes anonymous clients with security off"
	if len(open) > 1 {
		what = "realms " + strings.Join(open, ", ") + " take anonymous clients with security off"
	}
	return []string{fmt.Sprintf("gateway.listen %s: %s: anyone who reaches the port may call and publish to any URI through the HTTP bridge (/wamp/{realm}/...) and use the whole meta API (list every session with its address, end any); set security: true with roles (start from deploy/edgewamp.yaml), turn anonymous off, set the realm's http_bridge: false, or keep gateway.listen on loopback",
		g.Listen, what)}
}
