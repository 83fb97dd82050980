package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A shared wildcard registration's index is counted in
// limits.registration_bytes once, to the session whose REGISTER made it
// (this node's first callee of the pattern), until this node's last
// callee leaves it, as a subscription's is
// (TestSharedWildcardSubscriptionIndexCountedOnce). Before, 600 workers
// behind one address registering the same 4 round-robin wildcard patterns
// of 7 components were counted 2,094 bytes a hold and refused past their
// quarter of small-board.yaml's 16 MiB (542 bytes a hold without the
// index).
func TestSharedWildcardRegistrationIndexCountedOnce(t *testing.T) {
	const budget = 16 << 20 // deploy/small-board.yaml's registration_bytes
	e := newEnv(t, 2, func(c *Config) { c.MaxRegistrationBytes = budget })
	patterns := []string{"com.acme.jobs.v1..resize.image", "com.acme.jobs.v1..encode.video", "com.acme.jobs.v1..scan.upload", "com.acme.jobs.v1..index.docs"}
	var base, index int64
	for _, p := range patterns {
		base += int64(len(p)) + regOverhead
		index += wildcardIndexCost(proto.MatchWildcard, p)
	}
	const workers = 600
	conns := make([]*tc, 0, workers)
	refused := 0
	for i := 0; i < workers; i++ {
		c := e.connectFrom(i%2, proto.MsgPack, fmt.Sprintf("198.51.100.7:%d", 10000+i))
		c.hello("realm1", allFeatures, nil)
		c.id = c.expect(proto.CodeWelcome).ID
		conns = append(conns, c)
		for _, p := range patterns {
			req := c.nextReq()
			c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(map[string]any{"match": "wildcard", "invoke": "roundrobin"}), URI: []byte(p)})
			if m := c.recv(); m.Type != proto.CodeRegistered {
				if refused == 0 {
					t.Errorf("worker %d's REGISTER of %s: %v %s, want REGISTERED (%d bytes counted)", i, p, m.Type, m.URI, e.r.Stats().RegistrationBytes)
				}
				refused++
			}
		}
	}
	if refused > 0 {
		t.Fatalf("%d of %d REGISTERs refused", refused, workers*len(patterns))
	}
	if got, want := e.r.Stats().RegistrationBytes, workers*base+index; got != want {
		t.Fatalf("%d bytes counted, want %d (the holds' %d and the index once, %d)", got, want, workers*base, index)
	}
	conns[0].goodbye() // the patterns' maker: the others still hold them
	e.sync()
	if got, want := e.r.Stats().RegistrationBytes, (workers-1)*base+index; got != want {
		t.Fatalf("%d bytes counted after the patterns' maker left, want %d", got, want)
	}
	for _, c := range conns[1:] {
		c.goodbye()
	}
	e.sync()
	if got := e.r.Stats().RegistrationBytes; got != 0 {
		t.Fatalf("%d bytes counted once every worker left, want 0", got)
	}
}
