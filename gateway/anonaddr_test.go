package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestAnonymousInFlightPerAddress: every client without credentials acts
// as the realm's one anonymous principal, so they all shared its
// MaxInFlightPerIdentity slots: one address sending 1,100 calls to a
// callee that never answered took all 1,024, and a publication or call
// from any other address got 429 for up to MaxCallTimeout (5 min).
// Anonymous requests are now also counted per client address
// (MaxInFlightPerAddress, by default an eighth of MaxInFlightPerIdentity):
// one address holds at most that many, the others are served, and the
// address's count goes back to zero (its entry removed) however its
// requests end (answered, failed, timed out, client gone), on the event
// loop's HTTP lane (the calls) and on net/http (the publications, and the
// calls with EDGEWAMP_TEST_GATEWAY_LANE=off).
func TestAnonymousInFlightPerAddress(t *testing.T) {
	const perIdentity, perAddr, flood = 32, 4, 40
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxInFlightPerIdentity = perIdentity // per address: the default, an eighth
	})
	if n := e.gw.opts.Limits.MaxInFlightPerAddress; n != perAddr {
		t.Fatalf("MaxInFlightPerAddress %d by default with MaxInFlightPerIdentity %d, want %d", n, perIdentity, perAddr)
	}
	var laneAdmitted atomic.Int64 // calls the event loop's lane admitted
	if e.lane {
		hook := func() { laneAdmitted.Add(1) }
		testHookLaneAdmitted.Store(&hook)
		t.Cleanup(func() { testHookLaneAdmitted.Store(nil) })
	}
	callee := e.dial("realm1", proto.JSON)
	release := make(chan struct{})
	e.register(callee, "com.hang", hangUntil(release))
	e.register(callee, "com.never", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	e.register(callee, "com.quick", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"quick"}}, nil
	})
	flooder, other := addrClient(t, "127.0.0.2"), addrClient(t, "127.0.0.3")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// 127.0.0.2 sends 40 calls at once to a callee that does not answer.
	floodCtx, cancelFlood := context.WithCancel(ctx)
	answers := make(chan httpAnswer, flood)
	var answered atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancelFlood()
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := post(floodCtx, flooder, e.base+"/wamp/realm1/call/com.hang", `{}`)
			answered.Add(1)
			answers <- a
		}()
	}
	waitFor(t, "every flood call answered or in flight", func() bool { return answered.Load()+e.gw.inflight.Load() == flood })

	// Another address is served: a publication (net/http) and a call.
	if a := post(ctx, other, e.base+"/wamp/realm1/publish/com.pub", `{"args":[1],"options":{"acknowledge":true}}`); a.status != 200 {
		t.Fatalf("anonymous publication from 127.0.0.3 while 127.0.0.2 holds %d calls: %d %v %s", e.gw.inflight.Load(), a.status, a.err, a.body)
	}
	if a := post(ctx, other, e.base+"/wamp/realm1/call/com.quick", `{}`); a.status != 200 {
		t.Fatalf("anonymous call from 127.0.0.3 while 127.0.0.2 holds %d calls: %d %v %s", e.gw.inflight.Load(), a.status, a.err, a.body)
	}

	// 127.0.0.2 holds perAddr calls; the others were refused, as is its next.
	if n := e.gw.inflight.Load(); n != perAddr {
		t.Fatalf("%d calls of 127.0.0.2 in flight, want %d", n, perAddr)
	}
	if n := addrEntries(e.gw); n != 1 {
		t.Fatalf("%d addresses in the per-address table, want 1", n)
	}
	for range flood - perAddr {
		expectAddrRefusal(t, <-answers)
	}
	expectAddrRefusal(t, post(ctx, flooder, e.base+"/wamp/realm1/call/com.quick", `{}`))
	expectAddrRefusal(t, post(ctx, flooder, e.base+"/wamp/realm1/publish/com.pub", `{}`))
	if n := refusals(e.gw, "address_in_flight"); n != flood-perAddr+2 {
		t.Fatalf("%d refusals counted as address_in_flight, want %d", n, flood-perAddr+2)
	}
	if n := refusals(e.gw, refusedIdentity); n != 0 {
		t.Fatalf("%d refusals counted as identity_in_flight, want 0", n)
	}

	if e.lane && laneAdmitted.Load() < perAddr {
		t.Fatalf("the lane admitted %d calls: the flood did not go through it", laneAdmitted.Load())
	}

	// The client goes away: the count returns to zero, the entry goes.
	cancelFlood()
	wg.Wait()
	waitFor(t, "127.0.0.2's calls released after the client went", func() bool {
		return e.gw.inflight.Load() == 0 && addrEntries(e.gw) == 0
	})

	// Answered: perAddr held calls, then the callee answers them.
	var held sync.WaitGroup
	for range perAddr {
		held.Add(1)
		go func() {
			defer held.Done()
			if a := post(ctx, flooder, e.base+"/wamp/realm1/call/com.hang", `{}`); a.status != 200 {
				t.Errorf("held call: %d %v %s", a.status, a.err, a.body)
			}
		}()
	}
	waitFor(t, "perAddr held calls", func() bool { return e.gw.inflight.Load() == perAddr })
	expectAddrRefusal(t, post(ctx, flooder, e.base+"/wamp/realm1/call/com.quick", `{}`))
	close(release)
	held.Wait()
	waitFor(t, "answered calls released", func() bool { return e.gw.inflight.Load() == 0 && addrEntries(e.gw) == 0 })

	// Timed out, and failed (no such procedure).
	for range perAddr {
		held.Add(1)
		go func() {
			defer held.Done()
			if a := post(ctx, flooder, e.base+"/wamp/realm1/call/com.never", `{"options":{"timeout":300}}`); a.status != http.StatusGatewayTimeout {
				t.Errorf("timed out call: %d %v %s", a.status, a.err, a.body)
			}
		}()
	}
	held.Wait()
	if a := post(ctx, flooder, e.base+"/wamp/realm1/call/com.none", `{}`); a.status != 404 {
		t.Fatalf("call of no procedure: %d %v %s", a.status, a.err, a.body)
	}
	waitFor(t, "timed out and failed calls released", func() bool { return e.gw.inflight.Load() == 0 && addrEntries(e.gw) == 0 })
	if a := post(ctx, flooder, e.base+"/wamp/realm1/call/com.quick", `{}`); a.status != 200 {
		t.Fatalf("127.0.0.2 after its calls ended: %d %v %s", a.status, a.err, a.body)
	}
}

// addrClient is an HTTP client whose connections come from local address ip.
func addrClient(t *testing.T, ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

type httpAnswer struct {
	status int
	body   []byte
	err    error
}

func post(ctx context.Context, hc *http.Client, url, body string) httpAnswer {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return httpAnswer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return httpAnswer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpAnswer{status: resp.StatusCode, body: b, err: err}
}

func expectAddrRefusal(t *testing.T, a httpAnswer) {
	t.Helper()
	var p problemDoc
	if a.status != 429 || json.Unmarshal(a.body, &p) != nil || p.Error != URITooManyRequests ||
		p.Detail != "too many requests in flight from this address" {
		t.Fatalf("want 429 %s \"too many requests in flight from this address\", got %d %v %s", URITooManyRequests, a.status, a.err, a.body)
	}
}

func refusals(g *Server, reason string) uint64 {
	g.metrics.refusedMu.Lock()
	defer g.metrics.refusedMu.Unlock()
	if c := g.metrics.refusals[reason]; c != nil {
		return c.Load()
	}
	return 0
}

// addrEntries is the number of addresses in the per-address table.
func addrEntries(g *Server) int { return g.pool.addrsInFlight() }

// TestClientAddr: the per-address key is clientIP's, without allocating:
// an IPv4 address (an IPv4-mapped IPv6 address counts as it), an IPv6
// /64, one key for what is not an IP address.
func TestClientAddr(t *testing.T) {
	for _, c := range []struct{ remote, want string }{
		{"127.0.0.2:5555", "127.0.0.2"},
		{"[::ffff:10.1.2.3]:80", "10.1.2.3"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::"},
		{"[fe80::1%eth0]:80", "fe80::"},
		{"2001:db8:1:2::7", "2001:db8:1:2::"},
		{"@", "invalid IP"},
		{"", "invalid IP"},
	} {
		if got := clientAddr(c.remote).String(); got != c.want {
			t.Errorf("clientAddr(%q) = %s, want %s", c.remote, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { clientAddr("[2001:db8:1:2:3:4:5:6]:443") }); n != 0 {
		t.Errorf("clientAddr allocates %v times", n)
	}
	for _, id := range []identity{{method: "anonymous"}, {method: "gateway"}} {
		if !id.unauthenticated() {
			t.Errorf("%s: not counted per address", id.method)
		}
	}
	for _, m := range []string{"jwt", "apikey", "signed", "static"} {
		if (identity{method: m}).unauthenticated() {
			t.Errorf("%s: counted per address", m)
		}
	}
}

// hangUntil is a handler that answers "done" once release is closed (or
// its call ends).
func hangUntil(release <-chan struct{}) client.Handler {
	return func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &client.Result{Args: []any{"done"}}, nil
	}
}
