package route

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A node that drains withdraws its registrations from the mesh's
// directory (meshWithdraw) and gives its callees no new invocation: the
// other nodes' wamp.registration.lookup, get, match and list, answered
// from the directory, no longer show them. Their
// wamp.registration.list_callees and count_callees, gathered from every
// node, still listed the draining node's callees: a monitor on another
// node was told registration id had one callee, and that no registration
// id existed, in the same breath. The draining node now answers those
// queries as the directory has it: no such registration there.
func TestMeshDrainingNodeCalleesWithdrawnFromMeta(t *testing.T) {
	mm, es := newMemMesh(t, 3, 1, nil)
	callee := es[1].join(proto.MsgPack)
	id := callee.register("com.p", nil)
	other := es[2].join(proto.MsgPack)
	other.register("com.q", nil)
	idQ := uint64(0)
	mon := es[0].join(proto.MsgPack)
	mm.sync()
	if n := mon.callMeta("wamp.registration.count_callees", []any{id}, nil); n != int64(1) {
		t.Fatalf("count_callees before the drain: %v, want 1", n)
	}
	idQ = uint64(mon.callMeta("wamp.registration.lookup", []any{"com.q"}, nil).(int64))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := es[1].r.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	mm.sync()
	if v := mon.callMeta("wamp.registration.lookup", []any{"com.p"}, nil); v != nil {
		t.Fatalf("lookup of com.p while its only node drains: %v, want null", v)
	}
	for _, proc := range []string{"wamp.registration.get", "wamp.registration.count_callees", "wamp.registration.list_callees"} {
		req := mon.call(proc, nil, []any{id}, nil)
		mm.sync()
		m := mon.recv()
		t.Logf("%s of com.p while its only node drains: %s", proc, describe(m))
		if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URINoSuchRegistration {
			t.Fatalf("%s of com.p while its only node drains: %s, want ERROR %s (as wamp.registration.get and lookup)", proc, describe(m), proto.URINoSuchRegistration)
		}
	}
	// Another node's registration is still answered.
	if n := mon.callMeta("wamp.registration.count_callees", []any{idQ}, nil); n != int64(1) {
		t.Fatalf("count_callees of com.q on a node that does not drain: %v, want 1", n)
	}
	if l := ids(mon.callMeta("wamp.registration.list_callees", []any{idQ}, nil)); len(l) != 1 || l[0] != other.id {
		t.Fatalf("list_callees of com.q: %v, want [%d]", l, other.id)
	}
}
