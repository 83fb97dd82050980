package route

import (
	"sort"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// killedIDs reads a kill_by_authid result: the list of session ids.
func killedIDs(t *testing.T, m *proto.Message, req uint64) []uint64 {
	t.Helper()
	if m.Type != proto.CodeResult || m.Request != req {
		t.Fatalf("wamp.session.kill_by_authid: got %s, want RESULT for %d", describe(m), req)
	}
	a := argsOf(m)
	if len(a) != 1 {
		t.Fatalf("wamp.session.kill_by_authid: result %v, want one list", a)
	}
	l, ok := a[0].([]any)
	if !ok {
		t.Fatalf("wamp.session.kill_by_authid: result %v (%T), want the list of the sessions killed (WAMP: sessions|list)", a[0], a[0])
	}
	var out []uint64
	for _, v := range l {
		id, ok := argID([]any{v}, 0)
		if !ok {
			t.Fatalf("wamp.session.kill_by_authid: %v is not a session id", v)
		}
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func killSorted(ids ...uint64) []uint64 {
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func sameIDs(a, b []uint64) bool {
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

// WAMP Advanced Profile, Session Meta API: wamp.session.kill_by_authid
// returns "sessions|list - The list of WAMP session IDs of session that
// were killed" (Crossbar.io returns that list too), kill_by_authrole and
// kill_all "count|int". kill_by_authid answered the number of sessions
// killed: a client following the specification, iterating over its
// result, failed. Now the list, the caller left out (its own authid's
// other sessions are killed, not itself), [] when none; on a mesh the
// sessions every node killed. kill_by_authrole still answers a number.
func TestKillByAuthidListsKilledSessions(t *testing.T) {
	t.Run("one node", func(t *testing.T) {
		e := newEnv(t, 2, nil)
		dev := e.joinAs(proto.JSON, "dev")
		v1, v2 := e.joinAs(proto.MsgPack, "dev"), e.joinAs(proto.CBOR, "dev")
		other := e.joinAs(proto.JSON, "ops")
		req := dev.call("wamp.session.kill_by_authid", nil, []any{"dev"}, nil)
		if got, want := killedIDs(t, dev.recv(), req), killSorted(v1.id, v2.id); !sameIDs(got, want) {
			t.Fatalf("kill_by_authid dev killed %v, want %v (not the caller)", got, want)
		}
		v1.expect(proto.CodeGoodbye)
		v2.expect(proto.CodeGoodbye)
		e.sync() // their loops leave the realm after sending the GOODBYE
		req = dev.call("wamp.session.kill_by_authid", nil, []any{"nobody"}, nil)
		if got := killedIDs(t, dev.recv(), req); len(got) != 0 {
			t.Fatalf("kill_by_authid nobody killed %v", got)
		}
		if n := dev.callMeta("wamp.session.kill_by_authrole", []any{"user"}, nil); n != int64(1) {
			t.Fatalf("kill_by_authrole user: %v, want the count 1", n)
		}
		other.expect(proto.CodeGoodbye)
	})
	t.Run("mesh", func(t *testing.T) {
		mm, es := newMemMesh(t, 2, 1, nil)
		dev := es[0].joinAs(proto.JSON, "dev")
		here, there := es[0].joinAs(proto.JSON, "dev"), es[1].joinAs(proto.MsgPack, "dev")
		mm.sync()
		req := dev.call("wamp.session.kill_by_authid", nil, []any{"dev"}, nil)
		mm.sync()
		if got, want := killedIDs(t, dev.recv(), req), killSorted(here.id, there.id); !sameIDs(got, want) {
			t.Fatalf("kill_by_authid dev on a mesh killed %v, want %v", got, want)
		}
		here.expect(proto.CodeGoodbye)
		there.expect(proto.CodeGoodbye)
	})
}
