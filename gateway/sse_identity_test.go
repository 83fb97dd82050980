package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestSSEStreamsPerIdentityBounded: one principal with credentials (an
// API key here) opens at most max_streams_per_identity event streams
// (default a quarter of max_streams), from however many addresses, so
// that it cannot take every stream of the gateway: its next one is
// refused 429 (edgewamp_gateway_refused_total{reason="identity_streams"})
// and another client's stream opens. Before, only the address
// (max_streams_per_client) and the total bounded streams: one key used
// from four addresses took all of max_streams and every other client's
// stream was refused 503. Requests without credentials share one
// principal and are bounded per address only, as before.
func TestSSEStreamsPerIdentityBounded(t *testing.T) {
	laneFree(t)
	const key = "k-key-0123456789abcdef"
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxStreams = 8
		o.Limits.MaxStreamsPerClient = 2
		o.APIKeys = []APIKey{{Name: "k", Key: key, Realm: "realm1", AuthID: "tenant", Role: "anonymous"}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := func(hc *http.Client, withKey bool) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/wamp/realm1/events/com.tenant", nil)
		req.Header.Set("Accept", "text/event-stream")
		if withKey {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp.StatusCode
	}
	var codes []int
	for i := 2; i <= 5; i++ {
		hc := addrClient(t, fmt.Sprintf("127.0.0.%d", i))
		codes = append(codes, open(hc, true), open(hc, true))
	}
	opened := 0
	for _, c := range codes {
		if c == http.StatusOK {
			opened++
		}
	}
	if want := e.gw.opts.Limits.MaxStreamsPerIdentity; want != 2 || opened != want {
		t.Errorf("one API key from 4 addresses opened %d event streams (%v), want max_streams_per_identity %d (a quarter of max_streams 8)", opened, codes, want)
	}
	if n := refusals(e.gw, refusedStreamsIdentity); n != uint64(len(codes)-opened) {
		t.Errorf("%d refusals counted as %s, want %d", n, refusedStreamsIdentity, len(codes)-opened)
	}
	if c := open(addrClient(t, "127.0.0.9"), false); c != http.StatusOK {
		t.Fatalf("another client's stream: %d, want 200", c)
	}
	// Without credentials: the address's bound only.
	anon := addrClient(t, "127.0.0.10")
	if a, b := open(anon, false), open(anon, false); a != 200 || b != 200 {
		t.Fatalf("anonymous streams from one address: %d %d, want 200 200", a, b)
	}
}
