package oauth

import (
	"net/url"
	"testing"
	"time"
)

// A device polling at its interval through a load balancer that spreads
// its polls over two mesh nodes is not told slow_down because the nodes'
// clocks differ (by less than MaxClockSkew). Each poll's time was written
// by the clock of the node it reached and the next poll measured by
// another's: with one node 3 s ahead, every poll on the other node after
// one on it looked 3 s early, got slow_down, and grew the interval by
// 5 s, so that a device that obeyed noticed the user's approval later and
// later (here the interval grew from 5 s to 30 s in 12 polls). Now each
// node measures from its own last poll: polls spread over the nodes too
// fast for each still get slow_down.
func TestDevicePollAcrossSkewedNodes(t *testing.T) {
	store := newMemStore(time.Now)
	b := startEnv(t, func(o *Options) { o.Store = store })
	ahead := func() time.Time { return b.clock.Now().Add(3 * time.Second) }
	a := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = b.url; o.now = ahead })
	st, da := b.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if st != 200 {
		t.Fatalf("device authorization: %d %v", st, da)
	}
	dc := da["device_code"].(string)
	interval := time.Duration(da["interval"].(float64)) * time.Second
	for i := range 12 {
		n := a
		if i%2 == 1 {
			n = b
		}
		b.clock.Advance(interval)
		_, body := n.devicePoll(dc)
		switch body["error"] {
		case "authorization_pending":
		case "slow_down":
			interval += 5 * time.Second // RFC 8628 §3.5: the device obeys
			t.Errorf("poll %d, %v after the last on the other node: slow_down (the interval grows to %v)", i+1, interval-5*time.Second, interval)
		default:
			t.Fatalf("poll %d: %v", i+1, body)
		}
	}
}

// Spread over two nodes, polls 10 ms apart still get slow_down: each node
// measures them from its own last poll (a guard for the change above: it
// passed before it too).
func TestDevicePollStormAcrossNodes(t *testing.T) {
	store := newMemStore(time.Now)
	b := startEnv(t, func(o *Options) { o.Store = store })
	a := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = b.url; o.now = b.clock.Now })
	st, da := b.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if st != 200 {
		t.Fatalf("device authorization: %d %v", st, da)
	}
	dc := da["device_code"].(string)
	slow := 0
	for i := range 40 {
		n := a
		if i%2 == 1 {
			n = b
		}
		b.clock.Advance(10 * time.Millisecond)
		if _, body := n.devicePoll(dc); body["error"] == "slow_down" {
			slow++
		}
	}
	if slow < 38 {
		t.Errorf("%d of 40 polls 10 ms apart on two nodes got slow_down, want all but each node's first (38) at least", slow)
	}
}
