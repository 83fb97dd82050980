package fuzz

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto/forwarded"
)

// FuzzForwardedClient: the walk of X-Forwarded-For and Forwarded a trusted
// proxy's headers go through (proto/forwarded, for the WAMP listeners and
// the gateway) takes any bytes a client can put in them without panicking,
// and never names a client that is a trusted proxy, or an address whose
// text is not in the headers; what it names reads back as itself.
func FuzzForwardedClient(f *testing.F) {
	for _, s := range [][2]string{
		{"203.0.113.7, 127.0.0.1", ""},
		{"", `for="[2001:db8::1]:4711";proto=https, for=127.0.0.1`},
		{"unknown, _hidden", "for=unknown"},
		{"::ffff:198.51.100.2", ""},
		{"1.2.3.4:80,,  ,\t5.6.7.8", `for="1.2.3.4, 5.6.7.8"`},
		{strings.Repeat("10.0.0.1, ", 40), ""},
		{"fe80::1%eth0", `for="\"x"`},
	} {
		f.Add(s[0], s[1])
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, xffLine, fwdLine string) {
		var xff, fwd forwarded.List
		for _, l := range strings.Split(xffLine, "\n") {
			if l != "" {
				xff.AddPlain([]byte(l))
			}
		}
		for _, l := range strings.Split(fwdLine, "\n") {
			if l != "" {
				fwd.Add([]byte(l))
			}
		}
		client, why := forwarded.Client(&xff, &fwd, trusted)
		if !client.IsValid() {
			if why == "" {
				t.Fatal("no client and no reason")
			}
			return
		}
		if why != "" {
			t.Fatalf("client %v with a reason %q", client, why)
		}
		if forwarded.Trusted(client.Addr(), trusted) {
			t.Fatalf("named a trusted proxy as the client: %v", client)
		}
		if client.Addr().Zone() != "" || client.Addr().Is4In6() {
			t.Fatalf("client %v keeps a zone or an IPv4-mapped form", client)
		}
		s := forwarded.AddrString(client)
		back, ok := forwarded.ParseNode([]byte(s))
		if !ok || back != client {
			t.Fatalf("client %v written %q reads back as %v, %v", client, s, back, ok)
		}
	})
}

// FuzzForwardedAppended: whatever a client writes in X-Forwarded-For or
// Forwarded, the entry its proxy appends on the same line (as nginx's
// $proxy_add_x_forwarded_for does, and RFC 7239 says for Forwarded) names
// the client: nothing on the left can hide or replace it.
func FuzzForwardedAppended(f *testing.F) {
	for _, s := range []string{`"`, `for=203.0.113.66;x="`, `for="203.0.113.66`, `a\"`, strings.Repeat(`x", `, 40)} {
		f.Add(s)
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	f.Fuzz(func(t *testing.T, left string) {
		left = strings.NewReplacer("\r", "", "\n", "").Replace(left)
		var xff, none forwarded.List
		xff.AddPlain([]byte(left + ", 198.51.100.99"))
		if c, why := forwarded.Client(&xff, &none, trusted); c != netip.MustParseAddrPort("198.51.100.99:0") {
			t.Fatalf("X-Forwarded-For %q + the proxy's entry: %v (%s)", left, c, why)
		}
		var fwd forwarded.List
		fwd.Add([]byte(left + `, for="[2001:db8::99]:4711";proto=https, for=127.0.0.1`))
		if c, why := forwarded.Client(&none, &fwd, trusted); c != netip.MustParseAddrPort("[2001:db8::99]:4711") {
			t.Fatalf("Forwarded %q + the proxies' elements: %v (%s)", left, c, why)
		}
	})
}
