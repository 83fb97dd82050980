package loop

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// A WebSocket upgrade in HTTP/1.0, as nginx forwards one without
// proxy_http_version 1.1 (its default is 1.0), gets 400 whose body names
// HTTP/1.1 and the proxy setting, so that an operator sees why, where it
// got 505 "HTTP Version Not Supported" from gobwas/ws (HTTP/1.0 is served
// here: the health check). A request whose method is in lower case
// ("get": methods are case-sensitive, RFC 9110 §9.1) is answered 405 with
// Allow at the upgrade and health paths, 404 elsewhere, where it was
// closed unanswered as if it were not HTTP.
func TestSocketHTTP10UpgradeAndLowerCaseMethodAnswered(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	up10 := strings.Replace(string(wsUpgradeRequest("/ws", "wamp.2.json")), "HTTP/1.1", "HTTP/1.0", 1)
	for _, tc := range []struct {
		name, req string
		status    int
		body      []string
	}{
		{"HTTP/1.0 upgrade", up10, 400, []string{"HTTP/1.1", "proxy_http_version 1.1"}},
		{"HTTP/1.0 GET without upgrade", "GET /ws HTTP/1.0\r\n\r\n", 400, []string{"HTTP/1.1"}},
		{"lower-case upgrade", strings.Replace(string(wsUpgradeRequest("/ws", "wamp.2.json")), "GET", "get", 1), 405,
			[]string{"GET", "case"}},
		{"lower-case health", "get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 405, []string{"GET", "case"}},
		{"lower-case elsewhere", "get /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, nil},
	} {
		c := dialTCP(t, s.url, 0)
		c.Write([]byte(tc.req))
		r := readHTTPResponse(t, newReader(c), c)
		if r.status != tc.status {
			t.Fatalf("%s: status %d, want %d (%q)", tc.name, r.status, tc.status, r.body)
		}
		for _, w := range tc.body {
			if !strings.Contains(r.body, w) {
				t.Fatalf("%s: body %q does not name %q", tc.name, r.body, w)
			}
		}
		if tc.status == 405 && !strings.Contains(r.header, "Allow: GET, HEAD") {
			t.Fatalf("%s: no Allow in\n%s", tc.name, r.header)
		}
		waitClosed(t, c, ioTimeout)
	}
}

// A first line that is not a request line (method SP target SP
// HTTP/x.y), such as a memcached or Redis inline command from a client
// given the router's port, is decided as soon as it is whole, not held
// until handshake_timeout: a lower-case one ("get foo") is closed
// unanswered, as not HTTP (as it was before lower-case methods were
// answered), an upper-case one ("GET foo") gets the 400 its header gets
// once complete. A request line in lower case is still answered (404).
func TestSocketNotRequestLineClosedAtOnce(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	s := startServer(t, func(o *Options, _ *route.Config) { o.HandshakeTimeout = timeout })
	for _, tc := range []struct {
		first  string
		status int // 0: closed unanswered
	}{
		{"get foo\r\n", 0},
		{"set foo 0 0 3\r\n", 0},
		{"get foo\n", 0},
		{"get /ws HTTP/1.1 x\r\n", 0},
		{"GET foo\r\n", 400},
		{"SET foo bar\r\n", 400},
		{"GET / HTTP/1.1 \r\n", 400},
		{"get /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404},
	} {
		c := dialTCP(t, s.url, 0)
		c.Write([]byte(tc.first))
		start := time.Now()
		got := waitClosed(t, c, timeout/2) // the handshake timeout would close it at 2 s
		switch {
		case tc.status == 0 && len(got) != 0:
			t.Fatalf("%q answered %q", tc.first, got)
		case tc.status != 0 && !strings.HasPrefix(string(got), fmt.Sprintf("HTTP/1.1 %d ", tc.status)):
			t.Fatalf("%q answered %q, want %d", tc.first, got, tc.status)
		}
		t.Logf("%q: closed after %v, answered %q", tc.first, time.Since(start).Round(time.Millisecond), firstLine(got))
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}
