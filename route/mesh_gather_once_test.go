package route

import (
	"errors"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A gather that its Mesh both ended (done) and refused (an error), as
// edge's Gather did when a timer ended it while its query was refused,
// is ended once by route: its session's count of gathers under way and
// its address's slot are given back once, and its request answered once.
// Before, each path gave them back: the session's count went to -1 (17
// gathers at once after), another session's gather of the same address
// went uncounted, and a meta call was answered ERROR and then RESULT; a
// get_retained SUBSCRIBE had its retained events sent twice.
func TestMeshGatherEndedTwiceCountedOnce(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	e, a := es[0], mm.nodes[0]
	join := func() *tc { // from one address
		c := e.connectFrom(0, proto.JSON, "192.0.2.1:1000")
		c.hello("realm1", allFeatures, nil)
		c.id = c.expect(proto.CodeWelcome).ID
		return c
	}
	held, c := join(), join()
	addrCount := func() int {
		e.r.ms.addrs.mu.Lock()
		defer e.r.ms.addrs.mu.Unlock()
		return e.r.ms.addrs.n["192.0.2.1"]
	}
	// Another session of the address has a gather under way.
	a.gatherHold.Store(true)
	held.call("wamp.session.count", nil, nil, nil)
	mm.sync()
	if n := addrCount(); n != 1 {
		t.Fatalf("the address has %d gathers under way, want 1", n)
	}

	busy := errors.New("edge: mesh outbound queue full")
	a.gatherBoth.Store(&busy)
	req := c.call("wamp.session.count", nil, nil, nil)
	c.send(&proto.Message{Type: proto.CodeSubscribe, Request: c.nextReq(), URI: []byte("com.t"),
		Dict: c.opts(map[string]any{"get_retained": true})})
	mm.sync()
	answers := 0
	for len(c.peer.in) > 0 {
		if m := <-c.peer.in; m.Request == req && (m.Type == proto.CodeResult || m.Type == proto.CodeError) {
			answers++
		}
	}
	var asks, retains int
	if err := c.peer.sh.Do(func() { asks, retains = c.peer.sess.asks.busy, c.peer.sess.retains.busy }); err != nil {
		t.Fatal(err)
	}
	e.sync()
	if answers != 1 || asks != 0 || retains != 0 || addrCount() != 1 {
		t.Fatalf("after gathers ended twice: the meta call answered %d times (want 1), the session's gathers under way %d and %d (want 0), the address's %d (want 1: the other session's)",
			answers, asks, retains, addrCount())
	}
	if n := e.r.ms.endedTwice.Load(); n != 2 {
		t.Fatalf("%d gathers counted as ended twice, want 2", n)
	}
	a.gatherBoth.Store(nil)
	a.releaseGathers()
	mm.sync()
	if n := addrCount(); n != 0 {
		t.Fatalf("the address has %d gathers under way after they all ended", n)
	}
}
