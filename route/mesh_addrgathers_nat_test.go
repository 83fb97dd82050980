package route

import (
	"strconv"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// Devices behind one NAT share one client address. While another node
// answers slowly (a node restarting, a partition not yet detected: every
// gather waits up to gather_timeout), 300 of them each subscribing to
// their topic with get_retained held more than the address's
// maxAddrGathers, and past it each got this node's retained events only,
// silently: a SUBSCRIBED and no retained event, whose only copy was on
// the slow node. A get_retained SUBSCRIBE past the address's bound now
// waits for one of the address's gathers to end, and gathers then.
func TestMeshGetRetainedPastAddressBoundWaits(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	a, b := es[0], es[1]
	pub := b.join(proto.JSON)
	pub.retainAck("com.fleet.config", "v7") // kept on node B only
	mm.sync()
	const devices = maxAddrGathers + 44
	mm.nodes[0].gatherHold.Store(true) // node B answers slowly
	var fleet []*tc
	for i := range devices {
		c := a.connectFrom(i%2, proto.JSON, "203.0.113.5:"+strconv.Itoa(20000+i))
		c.hello("realm1", allFeatures, nil)
		c.id = c.expect(proto.CodeWelcome).ID
		c.subscribeRetained("com.fleet.config")
		c.expect(proto.CodeSubscribed)
		fleet = append(fleet, c)
	}
	mm.sync()
	if held := mm.nodes[0].gathers.Load(); held > maxAddrGathers {
		t.Fatalf("%d gathers of one address under way; want at most %d", held, maxAddrGathers)
	}
	mm.nodes[0].releaseGathers()
	got := make([]bool, devices)
	n := 0
	for round := 0; n < devices && round < 200; round++ {
		mm.sync()
		for i, c := range fleet {
			for len(c.peer.in) > 0 {
				if m := <-c.peer.in; m.Type == proto.CodeEvent {
					if args := argsOf(m); len(args) == 1 && args[0] == "v7" && !got[i] {
						got[i] = true
						n++
					}
				}
			}
		}
	}
	got0 := n
	t.Logf("%d devices of one address subscribed with get_retained while node B was slow: %d got B's retained event", devices, got0)
	if got0 != devices {
		t.Fatalf("%d of %d devices got the retained event", got0, devices)
	}
	if n := a.r.ms.addrs.size(); n != 0 {
		t.Fatalf("the address table holds %d addresses once every gather ended", n)
	}
}

// size returns the number of addresses with gathers under way or
// sessions waiting for them.
func (a *addrGathers) size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.n) + len(a.waits)
}

// A session waiting for a gather of its address to end that leaves
// before its turn passes the wake-up on (addrGathers.kick): more sessions
// left while waiting than the address had gathers under way, and the one
// still there gets its retained event all the same.
func TestMeshAddressWaitPassesOn(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	a, b := es[0], es[1]
	pub := b.join(proto.JSON)
	pub.retainAck("com.fleet.config", "v7") // kept on node B only
	mm.sync()
	mm.nodes[0].gatherHold.Store(true) // node B answers slowly
	join := func(i int) *tc {
		c := a.connectFrom(i%2, proto.JSON, "203.0.113.5:"+strconv.Itoa(20000+i))
		c.hello("realm1", allFeatures, nil)
		c.id = c.expect(proto.CodeWelcome).ID
		return c
	}
	for i := range maxAddrGathers / maxSessionGathers {
		c := join(i)
		for range maxSessionGathers {
			c.call("wamp.session.get", nil, []any{int64(12345)}, nil) // on no node
		}
	}
	mm.sync()
	if held := mm.nodes[0].gathers.Load(); held != maxAddrGathers {
		t.Fatalf("%d gathers under way, want %d", held, maxAddrGathers)
	}
	var gone []*tc
	for i := range maxAddrGathers + 8 {
		c := join(1000 + i)
		c.subscribeRetained("com.fleet.config")
		c.expect(proto.CodeSubscribed)
		gone = append(gone, c)
	}
	stay := join(5000)
	stay.subscribeRetained("com.fleet.config")
	stay.expect(proto.CodeSubscribed)
	mm.sync()
	for _, c := range gone {
		c.drop()
	}
	mm.sync()
	mm.nodes[0].releaseGathers()
	kept := 0
	for round := 0; kept == 0 && round < 200; round++ {
		mm.sync()
		for len(stay.peer.in) > 0 {
			if m := <-stay.peer.in; m.Type == proto.CodeEvent && len(argsOf(m)) == 1 && argsOf(m)[0] == "v7" {
				kept++
			}
		}
	}
	if kept != 1 {
		t.Fatalf("the session still waiting behind %d that left got the retained event %d times, want once", len(gone), kept)
	}
	for round := 0; a.r.ms.addrs.size() != 0 && round < 200; round++ {
		mm.sync()
	}
	if n := a.r.ms.addrs.size(); n != 0 {
		t.Fatalf("the address table holds %d addresses once every gather ended", n)
	}
}
