package gateway

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// postVia is post with an X-Forwarded-For header ("" none).
func postVia(ctx context.Context, hc *http.Client, url, xff string) httpAnswer {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(`{}`))
	if err != nil {
		return httpAnswer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return httpAnswer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpAnswer{status: resp.StatusCode, body: b, err: err}
}

// Behind a trusted proxy (Options.TrustedProxies, 127.0.0.2) the
// anonymous requests of two clients the proxy names in X-Forwarded-For
// count apart for MaxInFlightPerAddress (2 here): 198.51.100.7 holds 2
// calls and its third is refused, while 198.51.100.8's is served. A
// client that is not a trusted proxy (127.0.0.3) has its header ignored:
// two calls naming two clients take its own address's 2. A request from
// the proxy naming nobody is the proxy's, counted. Before, every request
// through the proxy was 127.0.0.2's, and 198.51.100.8's call was refused
// 429 behind 198.51.100.7's. On the lane (calls) and on net/http alike.
func TestTrustedProxyClientsApart(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxInFlightPerIdentity = 16
		o.Limits.MaxInFlightPerAddress = 2
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	})
	callee := e.dial("realm1", proto.JSON)
	release := make(chan struct{})
	e.register(callee, "com.hang", hangUntil(release))
	proxy, direct := addrClient(t, "127.0.0.2"), addrClient(t, "127.0.0.3")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := e.base + "/wamp/realm1/call/com.hang"
	var held sync.WaitGroup
	hold := func(hc *http.Client, xff string) {
		held.Add(1)
		go func() {
			defer held.Done()
			if a := postVia(ctx, hc, url, xff); a.status != 200 {
				t.Errorf("held call (X-Forwarded-For %q): %d %v %s", xff, a.status, a.err, a.body)
			}
		}()
	}
	hold(proxy, "203.0.113.66, 198.51.100.7")
	hold(proxy, "198.51.100.7")
	waitFor(t, "198.51.100.7's 2 calls in flight", func() bool { return e.gw.inflight.Load() == 2 })
	expectAddrRefusal(t, postVia(ctx, proxy, url, "198.51.100.7"))
	hold(proxy, "198.51.100.8")
	waitFor(t, "198.51.100.8's call in flight beside 198.51.100.7's", func() bool { return e.gw.inflight.Load() == 3 })

	hold(direct, "198.51.100.9")
	hold(direct, "198.51.100.10")
	waitFor(t, "127.0.0.3's 2 calls in flight", func() bool { return e.gw.inflight.Load() == 5 })
	expectAddrRefusal(t, postVia(ctx, direct, url, "198.51.100.11"))

	hold(proxy, "")
	waitFor(t, "the proxy's own call in flight", func() bool { return e.gw.inflight.Load() == 6 })
	if n := e.gw.proxyUnforwarded.Load(); n != 1 {
		t.Errorf("%d requests from the proxy counted as naming no client, want 1", n)
	}
	if n := addrEntries(e.gw); n != 4 {
		t.Errorf("%d addresses in the per-address table, want 4 (198.51.100.7, .8, 127.0.0.3, 127.0.0.2)", n)
	}
	close(release)
	held.Wait()
	waitFor(t, "calls released", func() bool { return e.gw.inflight.Load() == 0 && addrEntries(e.gw) == 0 })
}

// A request from a trusted proxy naming no client is counted once
// (edgewamp_gateway_proxy_unforwarded_total), whichever serves it: a GET,
// which the event loops' lane hands to net/http, was counted by both
// (ServeLane and dispatch), twice.
func TestTrustedProxyUnforwardedCountedOnce(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	})
	proxy := addrClient(t, "127.0.0.2")
	for i := range 3 {
		resp, err := proxy.Get(e.base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n := e.gw.proxyUnforwarded.Load(); n != uint64(i+1) {
			t.Fatalf("after %d GETs from the proxy naming no client: %d counted, want %d", i+1, n, i+1)
		}
	}
}
