package route

import (
	"sync"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A node of the previous release (060ff7c) combines the other nodes'
// answers to wamp.session.kill_by_authid by adding up the first element of
// each (combineSum: toInt(r[0])), and charges an answer of at most 32
// bytes by that number. Since 48f8855 this release's node answered the
// list of the sessions it killed there, which toInt reads as 0: a caller
// on a node of the previous release, during a rolling upgrade, was told
// its kill_by_authid killed none of the sessions of the upgraded nodes
// (they were killed all the same). The answer keeps the number first, as
// before, and carries the list after the walked count.
func TestKillByAuthidAnswerReadByPreviousRelease(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	dev := es[0].joinAs(proto.JSON, "dev")
	t1, t2 := es[1].joinAs(proto.MsgPack, "dev"), es[1].joinAs(proto.CBOR, "dev")
	mm.sync()
	var mu sync.Mutex
	var raw [][]byte
	tap := func(a []byte) { mu.Lock(); raw = append(raw, a); mu.Unlock() }
	mm.nodes[0].answerTap.Store(&tap)
	req := dev.call("wamp.session.kill_by_authid", nil, []any{"dev"}, nil)
	mm.sync()
	if got, want := killedIDs(t, dev.recv(), req), killSorted(t1.id, t2.id); !sameIDs(got, want) {
		t.Fatalf("kill_by_authid dev killed %v, want %v", got, want)
	}
	t1.expect(proto.CodeGoodbye)
	t2.expect(proto.CodeGoodbye)
	mu.Lock()
	defer mu.Unlock()
	if len(raw) != 1 {
		t.Fatalf("%d answers from node B, want 1", len(raw))
	}
	res, rerr, ok := decodeAnswer(raw[0])
	if !ok || rerr != nil || len(res) == 0 {
		t.Fatalf("node B's answer %x: %v %v %v", raw[0], res, rerr, ok)
	}
	// What the previous release's combineSum reads of it.
	if n := toInt(res[0]); n != 2 {
		t.Fatalf("node B's answer %v: a node of the previous release reads %d sessions killed there, want 2", res, n)
	}
}
