package route

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A gathered meta call refused for the node-wide bound of queued meta
// calls' bytes (maxQueuedAsks) is refused before it does anything, as one
// refused for its session's bound is (meshMetaFull): a kill refused so
// used to have killed this node's sessions all the same (the local part
// ran first, the bound was checked when the call was to be queued), and
// the caller was told wamp.error.unavailable, "retry later", while the
// other nodes' sessions lived on.
func TestMeshQueuedBytesRefusalKillsNothing(t *testing.T) {
	defer func(v int64) { maxQueuedAsks = v }(maxQueuedAsks)
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	filler := e.join(proto.MsgPack)
	killer, victim := e.joinAs(proto.MsgPack, "admin"), e.joinAs(proto.JSON, "dev") // realm trusted
	mm.sync()
	e.advance(time.Minute)
	junk := strings.Repeat("x", 60<<10)
	fargs := []any{"com.a", map[string]any{"match": "exact", "pad": junk}} // an option lookup does not read
	q, err := encodeQuery("realm1", "wamp.subscription.lookup", fargs, nil)
	if err != nil {
		t.Fatal(err)
	}
	const queued = 4
	maxQueuedAsks = queued * askCost(queuedMeta{q: q}) // the filler's queued calls fill it exactly
	mm.nodes[0].gatherHold.Store(true)                 // a slow node: the gathers wait
	for range maxSessionGathers + queued {
		filler.call("wamp.subscription.lookup", nil, fargs, nil)
	}
	for range maxSessionGathers { // the killer's turns busy
		killer.call("wamp.session.count", nil, nil, nil)
	}
	mm.sync()
	if res, ref := answeredAtOnce(filler); res+ref != 0 {
		t.Fatalf("the filler's calls: %d answered, %d refused before the node answered", res, ref)
	}
	if n := e.r.ms.asksQueued.Load(); n != maxQueuedAsks {
		t.Fatalf("%d bytes queued, want the bound %d", n, maxQueuedAsks)
	}
	req := killer.call("wamp.session.kill_by_authid", nil, []any{"dev"}, nil)
	mm.sync()
	m := killer.recv()
	if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIUnavailable {
		t.Fatalf("kill_by_authid with the node's queued meta calls at their bound: got %v %s, want ERROR unavailable", m.Type, describe(m))
	}
	select {
	case v := <-victim.peer.in:
		t.Fatalf("kill_by_authid refused (%s) yet the session of that authid here got %v %s", m.URI, v.Type, describe(v))
	case <-time.After(50 * time.Millisecond):
	}
	// Every other call is answered once the node answers, and gives back
	// what it counted (nothing is left asking when the mesh stops).
	mm.nodes[0].releaseGathers()
	if res, ref := drainMeta(t, filler, maxSessionGathers+queued, mm.sync); res != maxSessionGathers+queued {
		t.Fatalf("the filler's calls: %d answered, %d refused once the node answered", res, ref)
	}
	if res, ref := drainMeta(t, killer, maxSessionGathers, mm.sync); res != maxSessionGathers {
		t.Fatalf("the killer's counts: %d answered, %d refused once the node answered", res, ref)
	}
	if n := e.r.ms.asksQueued.Load(); n != 0 {
		t.Fatalf("%d bytes still counted for queued meta calls once all were asked", n)
	}
}
