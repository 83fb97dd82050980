package loop

import (
	"crypto/tls"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A client given the wrong scheme for a TLS port (rs:// or ws:// where
// rss:// or wss:// is served) is closed at once (README: "on a TLS port,
// anything but a TLS handshake record: tls_error"), an HTTP one after the
// answer Go's net/http gives it (400, "Client sent an HTTP request to an
// HTTPS server."), the others unanswered, and the close log line says
// what came. Before, the first record's 5-byte header
// was awaited before anything was judged: a plaintext RawSocket client,
// whose handshake is 4 bytes after which it waits for the reply, was held
// for handshake_timeout (10 s by default), then logged as
// handshake_timeout; and plaintext HTTP was logged as "first record is not
// a TLS handshake record", which left the operator to guess.
func TestTLSListenerClosesPlaintextClientsAtOnce(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	var logs logLines
	s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		o.HandshakeTimeout = time.Minute
	})
	const httpsOnly = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
	for _, c := range []struct {
		first  []byte
		detail string
		answer string
	}{
		{rsHandshake(proto.JSON, 15), "plaintext RawSocket handshake on a TLS listener", ""},
		{[]byte{rawMagic}, "plaintext RawSocket handshake on a TLS listener", ""},
		{wsUpgradeRequest("/ws", "wamp.2.json"), "plaintext HTTP on a TLS listener", httpsOnly},
		{[]byte("GET"), "plaintext HTTP on a TLS listener", httpsOnly},
		{[]byte{0}, "first record is not a TLS handshake record", ""},
	} {
		raw := dialTCP(t, s.url, 0)
		raw.Write(c.first)
		start := time.Now()
		if got := waitClosed(t, raw, 3*time.Second); string(got) != c.answer {
			t.Fatalf("%q: answered %q, want %q", c.first, got, c.answer)
		}
		var line string
		eventually(t, ioTimeout, "the close log line", func() bool { line = logs.find(c.detail); return line != "" })
		if !strings.Contains(line, `"reason":"tls_error"`) {
			t.Fatalf("%q: close log line %q", c.first, line)
		}
		t.Logf("%q closed in %v", c.first, time.Since(start).Round(time.Millisecond))
	}
	if st := s.e.Stats(); st.Closes[CloseTLS] != 5 || st.TLSHandshakes+st.TLSHandshakesQueued != 0 {
		t.Fatalf("closes %d tls_error, handshakes %d running and %d queued", st.Closes[CloseTLS], st.TLSHandshakes, st.TLSHandshakesQueued)
	}
}

// A TLS client on a plaintext port (wss:// or rss:// where ws:// and rs://
// are served) is closed at once, unanswered, as before, and its close log
// line now says so: before it read "not an HTTP request (no method)".
func TestPlainListenerNamesTLSClientInCloseLog(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	var logs logLines
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	raw := dialTCP(t, s.url, 0)
	tc := tls.Client(raw, cert.clientFor(0))
	tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err == nil {
		t.Fatal("a TLS handshake completed on the plaintext port")
	}
	var line string
	eventually(t, ioTimeout, "the close log line", func() bool {
		line = logs.find("a TLS ClientHello on a plaintext listener")
		return line != ""
	})
	if !strings.Contains(line, `"reason":"not_wamp"`) {
		t.Fatalf("close log line %q", line)
	}
}
