package route

import (
	"sort"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshRegistrationMetaEventsPerNode: on a mesh each node announces its
// own part of a registration (README: "meta events are per node (a
// registration shared by two nodes has two on_create)"): on_create when
// its first callee registers, on_delete when its last one goes, whether or
// not other nodes have callees of it. A node whose directory already held
// the registration for another node's callees announced no on_create for
// its own first callee, and a node whose callees went while another
// node's remained no on_delete: registered on one node then the other, one
// on_create (the first node's) and one on_delete (the last to leave); on
// both at once (before their directories met), two on_create and one
// on_delete, which a monitor pairing them could not match.
func TestMeshRegistrationMetaEventsPerNode(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	mon := es[0].join(proto.JSON)
	created := mon.subscribe("wamp.registration.on_create", nil)
	deleted := mon.subscribe("wamp.registration.on_delete", nil)
	mm.sync()
	collect := func() (creates, deletes []uint64) {
		t.Helper()
		mm.sync()
		for {
			select {
			case m := <-mon.peer.in:
				if m.Type != proto.CodeEvent {
					t.Fatalf("monitor got %s", describe(m))
				}
				switch s := uint64(toInt(argsOf(m)[0])); m.ID {
				case created:
					creates = append(creates, s)
				case deleted:
					deletes = append(deletes, s)
				}
				continue
			case <-time.After(20 * time.Millisecond):
			}
			sort.Slice(creates, func(i, j int) bool { return creates[i] < creates[j] })
			sort.Slice(deletes, func(i, j int) bool { return deletes[i] < deletes[j] })
			return creates, deletes
		}
	}
	sorted := func(ids ...uint64) []uint64 {
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		return ids
	}
	same := func(a, b []uint64) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}

	// One node after the other.
	a := es[0].join(proto.JSON)
	a.register("com.shared", map[string]any{"invoke": "roundrobin"})
	mm.sync()
	b := es[1].join(proto.JSON)
	b.register("com.shared", map[string]any{"invoke": "roundrobin"})
	if c, d := collect(); !same(c, sorted(a.id, b.id)) || len(d) != 0 {
		t.Fatalf("registered on A, then on B: on_create by %v, on_delete by %v; want on_create by both callees %v", c, d, sorted(a.id, b.id))
	}
	a.goodbye()
	if c, d := collect(); len(c) != 0 || !same(d, []uint64{a.id}) {
		t.Fatalf("A's callee left, B's stays: on_create by %v, on_delete by %v; want on_delete by A's callee %d", c, d, a.id)
	}
	b.goodbye()
	if c, d := collect(); len(c) != 0 || !same(d, []uint64{b.id}) {
		t.Fatalf("B's callee left: on_create by %v, on_delete by %v; want on_delete by %d", c, d, b.id)
	}

	// Both at once, before either node's directory has the other's.
	mm.mu.Lock()
	mm.hold = true
	mm.mu.Unlock()
	a, b = es[0].join(proto.JSON), es[1].join(proto.JSON)
	a.register("com.both", map[string]any{"invoke": "roundrobin"})
	b.register("com.both", map[string]any{"invoke": "roundrobin"})
	mm.release()
	mm.sync()
	a.goodbye()
	mm.sync()
	b.goodbye()
	if c, d := collect(); !same(c, sorted(a.id, b.id)) || !same(d, sorted(a.id, b.id)) {
		t.Fatalf("registered on both at once, then left: on_create by %v, on_delete by %v; want both by each callee %v", c, d, sorted(a.id, b.id))
	}
}
