package client

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The restores a router refuses for a while (busy: unavailable; a mesh
// still holding a dead node's single registration, or revoking the losers
// of a conflict on heal, all at once: procedure_already_exists) are tried
// again with jitter, as redials are: before, every retry waited exactly
// MinBackoff, then twice that, and so on, so that the restores refused
// together (one Client's, or a fleet's moved to the same node) came back
// together at every retry, each wave a burst for a router that is busy.
// 8 registrations refused at once, MinBackoff 800 ms: their second tries
// must not all come within 40 ms (jitter spreads them over 200 ms).
func TestRestoreRetriesJittered(t *testing.T) {
	p := newPeer(t)
	const n = 8
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{MinBackoff: 800 * time.Millisecond, MaxBackoff: 1600 * time.Millisecond})
	defer closeClient(cl, p)
	ctx := context.Background()
	for i := range n {
		a := goDo(func() (struct{}, error) {
			return struct{}{}, cl.Register(ctx, fmt.Sprintf("com.proc%d", i), func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
		})
		m := c.expect(proto.CodeRegister)
		c.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: m.Request + 100})
		_, err := a.wait(t)
		noErr(t, "Register", err)
	}
	c.conn.Close()
	c2 := p.accept()
	c2.welcome(2)
	var refusals []*proto.Message
	for range n {
		m := c2.expect(proto.CodeRegister)
		refusals = append(refusals, &proto.Message{Type: proto.CodeError, ReqType: m.Type, Request: m.Request, URI: []byte(proto.URIUnavailable)})
	}
	c2.send(refusals...) // refused together
	refused := time.Now()
	var after []time.Duration
	for range n {
		c2.expect(proto.CodeRegister)
		after = append(after, time.Since(refused))
	}
	slices.Sort(after)
	spread := after[n-1] - after[0]
	t.Logf("second tries %v after the refusals, spread %v", after, spread)
	if spread < 40*time.Millisecond {
		t.Fatalf("%d restores refused together were all tried again within %v of each other (%v after the refusal): no jitter on restore retries", n, spread.Round(time.Millisecond), after[0].Round(time.Millisecond))
	}
}
