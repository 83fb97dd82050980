package gateway

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Over HTTP/2 (gateway.tls) one connection carries many requests at once:
// Go's server takes 250 streams a connection. limits.max_connections,
// which bounds the requests the gateway serves at once over HTTP/1.1 (one
// per connection), bounded 250 times as many over HTTP/2: one connection
// of a client that declared a body and sent none held 200 handlers (a
// goroutine, the body's first 16 KiB, the stream's state) for
// body_timeout under max_connections 4, and 10,000 connections would
// hold 2,500,000. The requests beyond each connection's first are now
// bounded by max_connections (and the 16 spare connections' probes)
// together: past it a request gets 503 at once, a health probe excepted,
// and another client's first request on a connection of its own is still
// served (when every request shared one bound, one HTTP/2 connection
// holding it had every other client refused 503).
func TestHTTP2StreamsBoundedByMaxConnections(t *testing.T) {
	laneFree(t)
	e, hc := tlsEnv(t, func(o *Options) { o.Limits.MaxConnections = 4 })
	hc.Transport.(*http.Transport).MaxConnsPerHost = 1 // one connection
	base := "https://" + e.gw.Addr().String()
	get := func(path string) (*http.Response, error) {
		r, err := hc.Get(base + path)
		if err == nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
		return r, err
	}
	if r, err := get("/healthz"); err != nil || r.ProtoMajor != 2 {
		t.Fatalf("GET /healthz: %v %v", r, err)
	}
	const n = 200
	var answered, refused atomic.Int32
	var wg sync.WaitGroup
	pipes := make([]*io.PipeWriter, n)
	for i := range pipes {
		pr, pw := io.Pipe()
		pipes[i] = pw
		req, _ := http.NewRequest("POST", base+"/wamp/realm1/call/com.x", pr)
		req.ContentLength = 1 << 20 // declared, never sent
		req.Header.Set("Content-Type", "application/json")
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := hc.Do(req)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			answered.Add(1)
			if r.StatusCode == http.StatusServiceUnavailable {
				refused.Add(1)
			}
		}()
	}
	defer func() {
		for _, pw := range pipes {
			pw.Close()
		}
		wg.Wait()
	}()
	// The connection's first, and max_connections and the 16 spare ones
	// beyond it, in progress; the others are refused at once (before,
	// none was answered before body_timeout, 10 s).
	want := int32(n - 1 - 4 - spareConns)
	waitWithin(t, 4*time.Second, "the requests past max_connections refused", func() bool { return refused.Load() >= want })
	if a := answered.Load(); a > n-5 {
		t.Errorf("%d of the %d stalled requests answered, want at least 4 still in progress", a, n)
	}
	// A health probe is still answered on the same connection.
	if r, err := get("/healthz"); err != nil || r.StatusCode != 200 {
		t.Errorf("GET /healthz with the requests in progress: %v %v", r, err)
	}
	// Another client, on a connection of its own, is served: its request
	// reaches the route (no callee: not the gateway's 503 of the bound).
	other := &http.Client{Transport: hc.Transport.(*http.Transport).Clone()}
	defer other.CloseIdleConnections()
	req, _ := http.NewRequest("POST", base+"/wamp/realm1/call/com.x", strings.NewReader("[]"))
	req.Header.Set("Content-Type", "application/json")
	r, err := other.Do(req)
	if err != nil {
		t.Fatalf("another client's call: %v", err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "max_connections") {
		t.Errorf("another client's first request refused by the bound one connection holds: %d %s", r.StatusCode, body)
	}
}
