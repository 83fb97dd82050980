package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// subscribeRetained sends a get_retained SUBSCRIBE of uri without waiting
// for its answer.
func (c *tc) subscribeRetained(uri string) {
	c.send(&proto.Message{Type: proto.CodeSubscribe, Request: c.nextReq(), URI: []byte(uri),
		Dict: c.opts(map[string]any{"get_retained": true})})
}

// A get_retained SUBSCRIBE of an exact topic on a mesh asks every other
// node for its retained events of the topic; with nothing retained there
// their answers are empty, and the gather was charged nothing (only the
// answers' bytes were): a session repeating it (a subscriber may) made
// every other node answer a query per SUBSCRIBE, as fast as its 16
// gathers came back, with its walk budget untouched. Each gather now
// costs meshAskCost per node asked, at least one, as the gathered meta
// calls do.
func TestMeshExactGetRetainedOfNothingCharged(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	att := e.join(proto.MsgPack)
	e.advance(time.Minute) // the budget full; the clock stops here
	q0 := mm.nodes[0].queries.Load()
	const rounds, perRound = 200, maxSessionGathers
	for range rounds {
		for range perRound {
			att.subscribeRetained("com.nothing.here")
		}
		mm.sync()
		answeredAtOnce(att)
		for len(att.peer.in) > 0 {
			<-att.peer.in
		}
	}
	asked := mm.nodes[0].queries.Load() - q0
	lim := int64(walkBurst/meshAskCost + 2*maxSessionGathers)
	t.Logf("%d get_retained SUBSCRIBEs of a topic retained nowhere, the clock stopped: node B answered %d queries (limit %d)", rounds*perRound, asked, lim)
	if asked > lim {
		t.Fatalf("%d get_retained SUBSCRIBEs of a topic retained nowhere made node B answer %d queries with the clock stopped; the walk budget allows %d", rounds*perRound, asked, lim)
	}
	// The budget back, a single one asks at once.
	e.advance(time.Minute)
	mm.sync()
	for len(att.peer.in) > 0 {
		<-att.peer.in
	}
	q1 := mm.nodes[0].queries.Load()
	att.subscribeRetained("com.other")
	if m := att.expect(proto.CodeSubscribed); m.Request != att.req {
		t.Fatalf("SUBSCRIBED for %d, want %d", m.Request, att.req)
	}
	mm.sync()
	if mm.nodes[0].queries.Load() == q1 {
		t.Fatal("a single get_retained SUBSCRIBE with the budget back did not ask the other node at once")
	}
}
