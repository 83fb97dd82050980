package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStreamsLeaveConnectionsForRequests: event streams last, and could
// take every connection max_connections allows (max_streams defaults to
// it), so that routes, OAuth2 endpoints and, on net/http, every other
// request got 503 at once. Streams now stop short of max_connections by
// a reserve for short requests.
func TestStreamsLeaveConnectionsForRequests(t *testing.T) {
	const n = 8
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxConnections, o.Limits.MaxStreams, o.Limits.MaxStreamsPerClient = n, n, n
		o.Routes = []Route{{Name: "poke", Method: "POST", Path: "/poke", Realm: "realm1", Publish: "com.reserve.poke"}}
	})
	opened := 0
	for i := 0; i < n; i++ {
		c, resp, err := rawRequest(t, e, "GET /wamp/realm1/events/com.full HTTP/1.1\r\nHost: localhost\r\n\r\n")
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if resp.StatusCode != 200 {
			c.Close()
			break
		}
		opened++
	}
	if opened == 0 || opened >= n {
		t.Fatalf("%d streams opened of max_connections %d: none left for other requests", opened, n)
	}
	// The refused stream's connection is gone (its slot given back).
	ll := e.gw.ln.(*limitListener)
	// On a timeout, say what holds the slots: CI once timed out here
	// (c71a1d3, unreproduced in 480 runs since, under load too).
	deadline := time.Now().Add(10 * time.Second)
	for len(ll.sem) > opened {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the refused stream's connection to close: %d connection slots held, %d streams opened (%d counted), %d spare", len(ll.sem), opened, e.gw.streams.Load(), len(ll.spare))
		}
		time.Sleep(10 * time.Millisecond)
	}
	hc := &http.Client{Timeout: 4 * time.Second}
	r, err := hc.Post(e.base+"/poke", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("a route's POST with the streams open: %v", err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode >= 300 {
		t.Fatalf("a route's POST with the streams open: %d %s", r.StatusCode, b)
	}
}

// rawRequest writes req on a connection of its own to e's gateway (open
// until the test's end, 20 s at the most) and reads the response's head.
func rawRequest(t *testing.T, e *env, req string) (net.Conn, *http.Response, error) {
	t.Helper()
	c := e.dialGateway(t, 20*time.Second)
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	return c, resp, err
}

// fillConnections takes every connection of e's max_connections n: as
// many event streams as may open (streamLimit), then idle keep-alive
// connections whose request has an Expect header (net/http keeps them;
// the lane hands them over). Not HTTP/1.0 ones: every HTTP/1.0 request
// ends its connection (3e7c685).
func fillConnections(t *testing.T, e *env, n int) {
	t.Helper()
	streams := int(streamLimit(&e.gw.opts.Limits))
	for i := 0; i < n; i++ {
		req := "GET /healthz HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\r\n"
		if i < streams {
			req = "GET /wamp/realm1/events/com.full HTTP/1.1\r\nHost: localhost\r\n\r\n"
		}
		_, resp, err := rawRequest(t, e, req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d: %v %v", i, resp, err)
		}
	}
	waitFor(t, "the streams opened", func() bool { return e.gw.streams.Load() == int64(streams) })
}
