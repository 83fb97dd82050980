package gateway

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// TestSpareConnectionsPerAddress: the 16 spare connections kept past
// max_connections for /healthz and /readyz (939dda3) were first come,
// first served: one address opening 16 connections that never finish
// their request's header held them all for read_header_timeout, and
// reconnecting as they were cut held them for good, so the
// orchestrator's probes waited in the listen backlog and failed again.
// An address now holds at most spareConnsPerAddress of them.
func TestSpareConnectionsPerAddress(t *testing.T) {
	const n = 4
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxConnections, o.Limits.MaxStreams, o.Limits.MaxStreamsPerClient = n, n, n
		o.Limits.ReadHeaderTimeout = 20 * time.Second // the spares stay held for the whole test
	})
	fillConnections(t, e, n)
	ll := e.gw.ln.(*limitListener)
	// Another address opens every spare connection and never ends its
	// request's header (a probe's request line, so that the event loop's
	// lane hands it to net/http past its own cap too).
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	// On the lane, n of them take the port's own connections (the lane
	// waits for their headers) and the rest go over its cap to net/http.
	var ended atomic.Int64
	for i := 0; i < spareConns+n; i++ {
		c, err := d.Dial("tcp", e.gw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: localhost\r\n")); err != nil {
			t.Fatal(err)
		}
		go func() {
			io.Copy(io.Discard, c)
			ended.Add(1)
		}()
	}
	// Each of its connections is taken as a spare or closed.
	waitFor(t, "the address's connections settled", func() bool { return len(ll.spare)+int(ended.Load()) >= spareConns })
	ll.spareMu.Lock()
	got := ll.spareBy[netip.MustParseAddr("127.0.0.2")]
	ll.spareMu.Unlock()
	if got > spareConnsPerAddress {
		t.Fatalf("one address holds %d spare connections, want at most %d", got, spareConnsPerAddress)
	}
	hc := &http.Client{Timeout: 4 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		r, err := hc.Get(e.base + path)
		if err != nil {
			t.Fatalf("GET %s with another address holding the spares: %v", path, err)
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Fatalf("GET %s with another address holding the spares: %d", path, r.StatusCode)
		}
	}
}
