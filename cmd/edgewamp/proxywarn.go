package main

import (
	"fmt"
	"net/netip"
)

// Trusted reverse proxies (listeners[].trusted_proxies,
// gateway.trusted_proxies): what check-config refuses of an entry and
// warns about.

// zonedProxy says why s, an entry of a list of addresses, is refused
// when it is an address with an IPv6 zone (fe80::1%eth0), "" otherwise.
// Peers are matched without their interface (forwarded.Trusted), so the
// zone was dropped and the entry trusted fe80::1 on every interface: a
// host on another link could name any client.
func zonedProxy(s string) string {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() != "" {
		return fmt.Sprintf("%q has a zone (%%%s), which is not supported: peers are matched by address alone, so it would trust %s on every interface; give an address or a network without a zone", s, a.Zone(), a.WithZone(""))
	}
	return ""
}

// broadProxy reports whether the network p is broader than any private
// range (10.0.0.0/8, fc00::/7): it then takes in hosts on the internet.
func broadProxy(p netip.Prefix) bool {
	p = unmapPrefix(p)
	if p.Addr().Is4() {
		return p.Bits() < 8
	}
	return p.Bits() < 7
}

// proxyWarnings says, one line per entry, where a trusted_proxies entry
// is broader than any private range (0.0.0.0/0, ::/0): every peer in it
// may name any client address in X-Forwarded-For or Forwarded, and so
// take another client's place in everything keyed on a client's address.
// nil when none is. check-config and run say them; a reload does not
// apply the lists (a restart does). gateway.trusted_proxies is left out
// while the gateway is off.
func (c *config) proxyWarnings() []string {
	const what = "may name any client address in X-Forwarded-For or Forwarded: a client connecting from there can take another's address (limits.auth_failures' lockouts and exemptions, the per-address bounds and shares, the logs, the meta API's transport.peer); name the reverse proxies' own addresses or networks instead"
	var out []string
	say := func(key, s string) {
		if p, err := parsePrefix(s); err == nil && broadProxy(p) {
			out = append(out, fmt.Sprintf("%s %s is broader than any private network: every peer in it %s", key, s, what))
		}
	}
	for i, l := range c.Listeners {
		for j, s := range l.TrustedProxies {
			say(fmt.Sprintf("listeners[%d].trusted_proxies[%d]", i, j), s)
		}
	}
	if c.gatewayOff() {
		return out // its proxies reach nothing: no warning in their name
	}
	for i, s := range c.Gateway.TrustedProxies {
		say(fmt.Sprintf("gateway.trusted_proxies[%d]", i), s)
	}
	return out
}

// proxyListError is the error for entry s of a list of addresses and
// networks (key), or "" when s is one.
func proxyListError(key, s string) string {
	if why := zonedProxy(s); why != "" {
		return key + ": " + why
	}
	if _, err := parsePrefix(s); err != nil {
		return fmt.Sprintf("%s: %q is not an address or a network (like 127.0.0.1, ::1 or 10.0.0.0/8)", key, s)
	}
	return ""
}

// exemptProxyWarnings says, one line per pair, where an exempt network
// (limits.auth_failures.exempt) overlaps a trusted proxy's entry
// (listeners[].trusted_proxies, gateway.trusted_proxies): a connection
// from the proxy that names no client (RawSocket, which has no headers;
// an upgrade or a request without X-Forwarded-For or Forwarded) keeps
// the proxy's address, and every client reaching the router that way is
// then exempt from the failed-login limiters (the WAMP logins', the
// OAuth2 endpoints', the gateway's): it may guess passwords without a
// lockout. A warning, not a refusal: a local service may share the
// proxy's address on purpose. nil when none does. check-config and run
// say them (both lists apply at a restart only). gateway.trusted_proxies
// is left out while the gateway is off: no connection comes from them.
func (c *config) exemptProxyWarnings() []string {
	var out []string
	for i, es := range c.Limits.AuthFailures.Exempt {
		e, err := parsePrefix(es)
		if err != nil {
			continue // refused already
		}
		e = unmapPrefix(e)
		say := func(key, s string) {
			if p, err := parsePrefix(s); err == nil && unmapPrefix(p).Overlaps(e) {
				out = append(out, fmt.Sprintf("limits.auth_failures.exempt[%d] %s overlaps %s %s: a connection from that proxy that names no client "+
					"(RawSocket, which has no headers; an upgrade or a request without X-Forwarded-For or Forwarded) keeps the proxy's address, "+
					"so every client reaching the router that way is never counted nor locked out by the failed-login limiters "+
					"(WAMP logins, the OAuth2 endpoints, the gateway) and may guess passwords without limit; "+
					"exempt the networks of the clients you trust, not the proxy's address", i, es, key, s))
			}
		}
		for j, l := range c.Listeners {
			for k, s := range l.TrustedProxies {
				say(fmt.Sprintf("listeners[%d].trusted_proxies[%d]", j, k), s)
			}
		}
		if c.gatewayOff() {
			continue // its proxies reach nothing: no warning in their name
		}
		for k, s := range c.Gateway.TrustedProxies {
			say(fmt.Sprintf("gateway.trusted_proxies[%d]", k), s)
		}
	}
	return out
}

// broadExemptWarnings says, one line per entry, where an exempt network
// (limits.auth_failures.exempt) is broader than any private range
// (0.0.0.0/0, ::/0, 2000::/3: broadProxy's measure): every peer in it,
// hosts on the internet, is never counted nor locked out by the
// failed-login limiters, which then protect nothing from there. A
// warning, not a refusal, as for trusted_proxies: a test bed may mean
// it. nil when none is. check-config and run say them (the list applies
// at a restart only).
func (c *config) broadExemptWarnings() []string {
	var out []string
	for i, s := range c.Limits.AuthFailures.Exempt {
		if p, err := parsePrefix(s); err == nil && broadProxy(p) {
			out = append(out, fmt.Sprintf("limits.auth_failures.exempt[%d] %s is broader than any private network: every peer in it, hosts on the internet, "+
				"is never counted nor locked out by the failed-login limiters (WAMP logins, the OAuth2 endpoints, the gateway) and may guess passwords without limit; "+
				"exempt only the networks or addresses of the clients you trust", i, s))
		}
	}
	return out
}
