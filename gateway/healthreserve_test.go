package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHealthAnsweredWithConnectionsFull: event streams held every
// connection net/http may have (max_connections), so /healthz and /readyz
// waited in the listen backlog and timed out; an orchestrator whose probe
// fails restarts or drains the router. The defaults allow it too
// (max_connections and max_streams 10,000 each, max_streams_per_client
// 1,000: ten addresses). Health and readiness are answered on connections
// kept spare beyond max_connections; any other request there gets 503.
func TestHealthAnsweredWithConnectionsFull(t *testing.T) {
	const n = 8
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxConnections, o.Limits.MaxStreams, o.Limits.MaxStreamsPerClient = n, n, n
	})
	// Streams and idle keep-alive connections (streams stop short of
	// max_connections, streamLimit).
	fillConnections(t, e, n)
	hc := &http.Client{Timeout: 4 * time.Second}
	for _, path := range []string{"/healthz", "/readyz", "/healthz"} {
		r, err := hc.Get(e.base + path)
		if err != nil {
			t.Fatalf("GET %s with every connection held: %v", path, err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || !strings.Contains(string(b), `"status"`) {
			t.Fatalf("GET %s: %d %s", path, r.StatusCode, b)
		}
	}
	// Anything else on a spare connection is refused at once, not queued.
	r, err := hc.Post(e.base+"/wamp/realm1/publish/com.full", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("publish with every connection held: %v", err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("publish with every connection held: %d, want 503 with Retry-After", r.StatusCode)
	}
}

// TestLaneHealthAnsweredPastMaxConnections: the event loop's lane answered
// every request past the port's max_connections 503, health probes too,
// so that idle keep-alive clients filling the port failed the router's
// probes. A health probe past it goes to net/http's spare connections.
func TestLaneHealthAnsweredPastMaxConnections(t *testing.T) {
	const n = 4
	e := newEnv(t, func(o *Options) { o.Limits.MaxConnections = n })
	if !e.lane {
		t.Skip("the event loop's lane only")
	}
	for i := 0; i < n; i++ {
		if _, _, err := rawRequest(t, e, callPost("com.none")); err != nil {
			t.Fatal(err)
		}
	}
	hc := &http.Client{Timeout: 4 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		r, err := hc.Get(e.base + path)
		if err != nil {
			t.Fatalf("GET %s with the lane's connections full: %v", path, err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Fatalf("GET %s with the lane's connections full: %d %s", path, r.StatusCode, b)
		}
	}
	// A probe's connection went to net/http (which has room): a call on
	// a new connection is still past the port's cap.
	_, r, err := rawRequest(t, e, callPost("com.none"))
	if err != nil || r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a call past max_connections: %v %v, want 503", r, err)
	}
}
