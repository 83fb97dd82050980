package route

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Every failed authentication wrote an info line, with no bound: a
// cryptosign HELLO with an unknown key fails at once (a Challenge, no
// hashing), and the limiter bounds failures per address (100 per 5
// minutes), not across addresses, so many addresses (the 65,536 /64s of
// one IPv6 /48, 6.5 million failures per lockout) wrote as many lines as
// they liked, to the journal whose own rate limit then dropped the
// router's other lines. The transports' close log has written at most 20
// lines a second since it met the same flood. Now the failure lines, and
// apart the lockout lines, are at most 20 a second each, and the next one
// written says how many were left out (auth_logs_suppressed).
func TestAuthFailureLogLinesBounded(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	e, _ := secureEnv(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(w, nil)) })
	lines := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, "authentication failed") {
				out = append(out, l)
			}
		}
		return out
	}
	fail := func(i int) {
		var key [32]byte
		rand.Read(key[:])
		c := e.connectFrom(i%2, proto.JSON, fmt.Sprintf("10.%d.%d.1:1", i/250, i%250))
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"cryptosign"}, "authextra": map[string]any{"pubkey": hex.EncodeToString(key[:])}})
		if m := c.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URINoSuchPrincipal {
			t.Fatalf("got %v %s, want ABORT %s", m.Type, m.URI, proto.URINoSuchPrincipal)
		}
	}
	const n = 300
	start := time.Now()
	for i := range n {
		fail(i)
	}
	e.sync()
	got := lines()
	t.Logf("%d failed logins from %d addresses within a second (%v): %d lines", n, n, time.Since(start), len(got))
	if len(got) > 20 {
		t.Fatalf("%d failed logins within a second of the router's clock wrote %d \"authentication failed\" lines, want at most 20", n, len(got))
	}
	// A second later the next line says how many were left out.
	e.advance(time.Second)
	fail(n)
	e.sync()
	got = lines()
	last := got[len(got)-1]
	if want := fmt.Sprintf("auth_logs_suppressed=%d", n-20); !strings.Contains(last, want) {
		t.Fatalf("the next line, a second later: %q, want %s", last, want)
	}
}
