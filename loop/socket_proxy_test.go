package loop

import (
	"bufio"

	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/proto/forwarded"
	"github.com/edgewamp/edgewamp/route"
)

// Trusted reverse proxies (Listener.TrustedProxies, proxy.go).

// upgradeFrom opens a connection from src and sends a WebSocket upgrade
// with the extra header lines (each "Name: value"), returning the
// client and the answer's status.
func upgradeFrom(t testing.TB, src, addr string, extra ...string) (*wsClient, int) {
	t.Helper()
	c := dialFrom(t, src, addr)
	req := strings.TrimSuffix(string(wsUpgradeRequest("/ws", proto.JSON.Subprotocol(false))), "\r\n")
	for _, h := range extra {
		req += h + "\r\n"
	}
	req += "\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	w := &wsClient{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10), ser: proto.JSON, autoPong: true}
	return w, readHTTPResponse(t, w.br, c).status
}

// peerOf joins a session over w and returns its transport's peer address
// as the router's meta API gives it (wamp.session.get).
func peerOf(t testing.TB, w *wsClient) string {
	t.Helper()
	p := newWAMP(t, w, proto.JSON)
	p.join()
	m := p.call("wamp.session.get", []any{p.id})
	if m.Type != proto.CodeResult {
		t.Fatalf("wamp.session.get: %v %q", m.Type, m.URI)
	}
	d, _ := args(t, m)[0].(map[string]any)
	tr, _ := d["transport"].(map[string]any)
	peer, _ := tr["peer"].(string)
	return peer
}

// host returns the address of a peer string with or without a port.
func host(peer string) string {
	if h, _, err := net.SplitHostPort(peer); err == nil {
		return h
	}
	return peer
}

// Behind a trusted proxy (127.0.0.2) the session's address is the client
// the upgrade's X-Forwarded-For or Forwarded names; a peer that is not a
// trusted proxy (127.0.0.1) has its headers ignored; a header naming no
// usable client leaves the proxy's address, counted and logged once. A
// trusted proxy's connections count under their clients'
// addresses for MaxConnsPerAddress (2), not under the proxy's: the
// proxy holds more than 2, and a client past its bound is answered 503.
// Before, every session was 127.0.0.2's (or 127.0.0.1's, whatever it
// claimed), and the proxy's third connection was closed at accept.
func TestTrustedProxyNamesClient(t *testing.T) {
	t.Parallel()
	logs := &logLines{}
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.Listeners[0].TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
		o.MaxConnsPerAddress = 2
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		rc.Realms[0].Anonymous = true
	})
	idle := func() {
		t.Helper()
		eventually(t, ioTimeout, "no connection counted", func() bool {
			_, total, _ := s.e.addrCount("127.0.0.1")
			return total == 0
		})
	}
	for _, tc := range []struct {
		name, src string
		headers   []string
		want      string // the peer's address; "" the connection's own
	}{
		{"direct client spoofing", "127.0.0.1", []string{"X-Forwarded-For: 198.51.100.7", "Forwarded: for=198.51.100.7"}, ""},
		{"rightmost untrusted", "127.0.0.2", []string{"X-Forwarded-For: 203.0.113.66, 198.51.100.7"}, "198.51.100.7"},
		{"headers joined, trusted skipped", "127.0.0.2", []string{"X-Forwarded-For: 203.0.113.66", "X-Forwarded-For: 198.51.100.8,127.0.0.2"}, "198.51.100.8"},
		{"X-Forwarded-For before Forwarded", "127.0.0.2", []string{"Forwarded: for=203.0.113.66", "X-Forwarded-For: 198.51.100.9"}, "198.51.100.9"},
		{"Forwarded IPv6 with port", "127.0.0.2", []string{`Forwarded: for=203.0.113.66, for="[2001:db8::1]:4711";proto=https;by=_edge`}, "[2001:db8::1]:4711"},
		{"IPv4-mapped", "127.0.0.2", []string{"X-Forwarded-For: ::ffff:198.51.100.10"}, "198.51.100.10"},
		{"many entries, client on the right", "127.0.0.2", []string{"X-Forwarded-For: " + strings.Repeat("garbage, ", 100) + "198.51.100.11"}, "198.51.100.11"},
		{"no header", "127.0.0.2", nil, ""},
		{"unknown", "127.0.0.2", []string{"X-Forwarded-For: 198.51.100.12, unknown"}, ""},
		{"obfuscated", "127.0.0.2", []string{"Forwarded: for=_hidden"}, ""},
		{"zone", "127.0.0.2", []string{"X-Forwarded-For: fe80::1%eth0"}, ""},
		{"trusted proxies only", "127.0.0.2", []string{"X-Forwarded-For: 198.51.100.13" + strings.Repeat(", 127.0.0.2", forwarded.MaxEntries)}, ""},
	} {
		w, status := upgradeFrom(t, tc.src, s.url, tc.headers...)
		if status != 101 {
			t.Fatalf("%s: upgrade answered %d", tc.name, status)
		}
		want := tc.want
		if want == "" {
			want = tc.src
		}
		if got := peerOf(t, w); host(got) != host(want) || tc.want != "" && got != tc.want {
			t.Errorf("%s: session's peer %q, want %q", tc.name, got, want)
		}
		w.c.Close()
		idle()
	}
	if n := s.e.Stats().ProxyUnforwarded; n != 5 {
		t.Errorf("ProxyUnforwarded %d, want 5", n)
	}
	if n := logs.count("names no client address"); n != 1 {
		t.Errorf("%d log lines for 5 upgrades naming no client, want 1 (once per %v)", n, proxyLogEvery)
	}

	// Per client address: 198.51.100.7 has 2 through the proxy, its third
	// is refused, 198.51.100.8's is served, and so is a RawSocket of the
	// proxy's own (counted under 127.0.0.2, its address).
	before := s.e.Stats().Closes[CloseConnsPerAddress]
	var held []*wsClient
	for i := range 2 {
		w, status := upgradeFrom(t, "127.0.0.2", s.url, "X-Forwarded-For: 198.51.100.7")
		if status != 101 {
			t.Fatalf("connection %d of 198.51.100.7 through the proxy: %d", i+1, status)
		}
		held = append(held, w)
	}
	if _, status := upgradeFrom(t, "127.0.0.2", s.url, "X-Forwarded-For: 198.51.100.7"); status != 503 {
		t.Errorf("a third connection of 198.51.100.7 (max_connections_per_address 2): %d, want 503", status)
	}
	w, status := upgradeFrom(t, "127.0.0.2", s.url, "X-Forwarded-For: 198.51.100.8")
	if status != 101 {
		t.Fatalf("198.51.100.8 through the proxy, which holds 3 connections: %d", status)
	}
	if got := peerOf(t, w); host(got) != "198.51.100.8" {
		t.Errorf("peer %q", got)
	}
	rs, err := joinRSFrom(t, "127.0.0.2", s.url)
	if err != nil {
		t.Fatalf("RawSocket from the proxy: %v", err)
	}
	defer rs.Close()
	if n := s.e.Stats().Closes[CloseConnsPerAddress] - before; n != 1 {
		t.Errorf("%d closes counted as %s, want 1", n, CloseConnsPerAddress)
	}
	for _, c := range []struct {
		src  string
		want int
	}{{"198.51.100.7", 2}, {"198.51.100.8", 1}, {"127.0.0.2", 1}} {
		if n, _, bad := s.e.addrCount(c.src); n != c.want || bad != 0 {
			t.Errorf("%d connections counted for %s (%d bad releases), want %d", n, c.src, bad, c.want)
		}
	}
	for _, w := range append(held, w) {
		w.c.Close()
	}
	rs.Close()
	idle()
	if _, _, bad := s.e.addrCount("127.0.0.1"); bad != 0 {
		t.Errorf("%d releases of nothing counted", bad)
	}
}

// The header walk itself, past what a connection shows.
func TestForwardedClient(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	req := func(lines ...string) []byte {
		return []byte("GET /ws HTTP/1.1\r\nHost: x\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n")
	}
	for _, tc := range []struct {
		hdr  []byte
		want string // "" none
	}{
		{req("X-Forwarded-For: 1.2.3.4"), "1.2.3.4:0"},
		{req("x-forwarded-for: 1.2.3.4, 10.1.1.1, ::1"), "1.2.3.4:0"},
		{req("X-Forwarded-For: 1.2.3.4:5678"), "1.2.3.4:5678"},
		{req("X-Forwarded-For: [2001:db8::2]:80"), "[2001:db8::2]:80"},
		{req("X-Forwarded-For: [2001:db8::2]"), "[2001:db8::2]:0"},
		{req("X-Forwarded-For: 2001:db8::2"), "[2001:db8::2]:0"},
		{req("X-Forwarded-For: ::ffff:10.1.1.1, ::ffff:1.2.3.4"), "1.2.3.4:0"},
		{req("X-Forwarded-For: 1.2.3.4, ::ffff:10.1.1.1"), "1.2.3.4:0"},
		{req("X-Forwarded-For: 1.2.3.4, 5.6.7.8 9"), ""},
		{req("X-Forwarded-For: 1.2.3.4,"), ""},
		{req("X-Forwarded-For: 10.0.0.1"), ""},
		{req("X-Forwarded-For: " + strings.Repeat("9.9.9.9,", 3) + strings.TrimSuffix(strings.Repeat("10.0.0.1,", forwarded.MaxEntries), ",")), ""},
		{req("X-Forwarded-For: " + strings.Repeat("9.9.9.9,", 3) + strings.TrimSuffix(strings.Repeat("10.0.0.1,", forwarded.MaxEntries-1), ",")), "9.9.9.9:0"},
		{req("X-Forwarded-For: 1.2.3.4", "Forwarded: for=5.6.7.8"), "1.2.3.4:0"},
		{req(`Forwarded: for=1.2.3.4;proto=http, for="[2001:db8::3]:4711"`), "[2001:db8::3]:4711"},
		{req(`Forwarded: For="1.2.3.4:99"`), "1.2.3.4:99"},
		{req(`Forwarded: for="5.6.7.8, for=9.9.9.9";by=x, for=10.0.0.2`), ""}, // the comma is quoted: one element, unparsable
		{req(`Forwarded: for="[2001:db8::3]:4711", for=unknown`), ""},
		{req(`Forwarded: proto=https`), ""},
		{req(`Forwarded: for="1.2.3.4\"`), ""},
		{req(`Forwarded: for=1.2.3.4;x="a\",b", for=10.0.0.2`), "1.2.3.4:0"}, // an escaped quote, found from the right
		{req(`Forwarded: for=1.2.3.4;x="a\\", for=10.0.0.2`), "1.2.3.4:0"},   // an escaped backslash before the closing quote
		{req("X-Forwarded-For: " + strings.Repeat("1", forwarded.MaxEntry+1)), ""},
		{req("X-Real-IP: 1.2.3.4"), ""},
	} {
		ap, why := forwardedClient(tc.hdr, trusted)
		got := ""
		if ap.IsValid() {
			got = ap.String()
		}
		if got != tc.want || (got == "") == (why == "") {
			t.Errorf("%q: %q (%s), want %q", tc.hdr, got, why, tc.want)
		}
	}
}

// A trusted proxy's TLS handshakes are not bounded per address
// (MaxTLSHandshakesPerAddress 1 here): the proxy carries many clients,
// and no header names them before the handshake. 127.0.0.2, trusted,
// has two stalled handshakes running; 127.0.0.1's second is closed.
// Before, the proxy's second was closed too.
func TestTrustedProxyTLSHandshakesNotBoundPerAddress(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) {
		o.Listeners[0].TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
		o.MaxTLSHandshakesPerAddress = 1
	})
	stallFrom(t, "127.0.0.2", s.url, clientHello(t))
	stallFrom(t, "127.0.0.2", s.url, clientHello(t))
	stallFrom(t, "127.0.0.1", s.url, clientHello(t))
	eventually(t, ioTimeout, "3 handshakes running", func() bool { return s.e.Stats().TLSHandshakes == 3 })
	c := stallFrom(t, "127.0.0.1", s.url, clientHello(t))
	if closed, _ := closedWithin(c, 3*time.Second); !closed {
		t.Errorf("a second stalled handshake from 127.0.0.1 (not a proxy) was not closed")
	}
	if n := s.e.Stats().Closes[CloseTLSPerAddress]; n != 1 {
		t.Errorf("%d closes for %s, want 1", n, CloseTLSPerAddress)
	}
}

// What a client writes in X-Forwarded-For or Forwarded, which its proxy
// then appends its own entry to on the same line (nginx's
// $proxy_add_x_forwarded_for, a Forwarded appended as RFC 7239 says),
// neither hides nor replaces the entry the proxy appended: X-Forwarded-For
// has no quoted strings (a client's '"' swallowed the proxy's entry, and
// the client took the proxy's address, unlogged as itself), and a
// Forwarded element is found from the right, where the proxies write (a
// client's `x="` paired with the quote of the proxy's for="[v6]" made
// the proxy's element part of the client's, whose for= was read).
func TestTrustedProxyAppendedEntryStands(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.Listeners[0].TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
		rc.Realms[0].Anonymous = true
	})
	for _, tc := range []struct {
		name, header, want string
	}{
		{"quote in X-Forwarded-For", `X-Forwarded-For: ", 198.51.100.20`, "198.51.100.20"},
		{"quoted commas in X-Forwarded-For", `X-Forwarded-For: 203.0.113.66 "x, 198.51.100.21`, "198.51.100.21"},
		{"Forwarded quote paired with the proxy's", `Forwarded: for=203.0.113.66;x=", for="[2001:db8::5]:4711"`, "[2001:db8::5]:4711"},
		{"Forwarded quote left open", `Forwarded: for="203.0.113.66, for=198.51.100.22`, "198.51.100.22"},
	} {
		w, status := upgradeFrom(t, "127.0.0.2", s.url, tc.header)
		if status != 101 {
			t.Fatalf("%s: upgrade answered %d", tc.name, status)
		}
		if got := peerOf(t, w); host(got) != host(tc.want) {
			t.Errorf("%s (%s): session's peer %q, want %q", tc.name, tc.header, got, tc.want)
		}
		w.c.Close()
	}
	if n := s.e.Stats().ProxyUnforwarded; n != 0 {
		t.Errorf("ProxyUnforwarded %d, want 0: every proxy named its client", n)
	}
}
