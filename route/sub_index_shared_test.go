package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A wildcard pattern's index (wildcardIndexCost) is held once, whoever
// subscribes to it: it is counted in limits.subscription_bytes to the
// session whose SUBSCRIBE made it, until the pattern goes with its last
// subscriber, and a session joining it is counted its URI and
// subOverhead only. Before, each session's hold counted the index
// whole: 600 devices behind one address, each subscribing to the same 4
// wildcard patterns of 7 components (1,971 bytes a hold, for ~100 bytes
// of heap a join holds), passed their address's quarter of
// small-board.yaml's 16 MiB at the 533rd device, which the patterns'
// URIs and subOverhead alone (419 bytes a hold) leave room for 2,500.
func TestSharedWildcardSubscriptionIndexCountedOnce(t *testing.T) {
	const budget = 16 << 20 // deploy/small-board.yaml's subscription_bytes
	e := newEnv(t, 2, func(c *Config) { c.MaxSubscriptionBytes = budget })
	patterns := []string{"com.acme.fleet.v1..telemetry.status", "com.acme.fleet.v1..command.reboot", "com.acme.fleet.v1..config.update", "com.acme.fleet.v1..firmware.offer"}
	var base, index int64
	for _, p := range patterns {
		base += int64(len(p)) + subOverhead
		index += wildcardIndexCost(proto.MatchWildcard, p)
	}
	const devices = 600
	conns := make([]*tc, 0, devices)
	refused := 0
	for i := 0; i < devices; i++ {
		c := e.connectFrom(i%2, proto.MsgPack, fmt.Sprintf("198.51.100.7:%d", 10000+i))
		c.hello("realm1", allFeatures, nil)
		c.id = c.expect(proto.CodeWelcome).ID
		conns = append(conns, c)
		for _, p := range patterns {
			req := c.nextReq()
			c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: c.opts(map[string]any{"match": "wildcard"}), URI: []byte(p)})
			if m := c.recv(); m.Type != proto.CodeSubscribed {
				if refused == 0 {
					t.Errorf("device %d's SUBSCRIBE of %s: %v %s, want SUBSCRIBED (%d bytes counted)", i, p, m.Type, m.URI, e.r.Stats().SubscriptionBytes)
				}
				refused++
			}
		}
	}
	if refused > 0 {
		t.Fatalf("%d of %d SUBSCRIBEs refused", refused, devices*len(patterns))
	}
	if got, want := e.r.Stats().SubscriptionBytes, devices*base+index; got != want {
		t.Fatalf("%d bytes counted, want %d (the holds' %d and the index once, %d)", got, want, devices*base, index)
	}
	// The devices that made the patterns leave first: the index is still
	// held, by the others' joins, and still counted.
	conns[0].goodbye()
	e.sync()
	if got, want := e.r.Stats().SubscriptionBytes, (devices-1)*base+index; got != want {
		t.Fatalf("%d bytes counted after the patterns' maker left, want %d", got, want)
	}
	for _, c := range conns[1:] {
		c.goodbye()
	}
	e.sync()
	if got := e.r.Stats().SubscriptionBytes; got != 0 {
		t.Fatalf("%d bytes counted once every device left, want 0", got)
	}
}
