package route

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// leaveEvents collects the wamp.session.on_leave events mon got for
// subscription sub until none comes for 50 ms: session id -> how many,
// and the arguments of each.
func leaveEvents(t *testing.T, mm *memMesh, mon *tc, sub uint64) (map[uint64]int, map[uint64][]any) {
	t.Helper()
	mm.sync()
	n, args := map[uint64]int{}, map[uint64][]any{}
	for {
		select {
		case m := <-mon.peer.in:
			if m.Type != proto.CodeEvent || m.ID != sub {
				continue // on_join and others
			}
			a := argsOf(m)
			if len(a) != 3 {
				continue // on_join, on a prefix subscription
			}
			id := uint64(toInt(a[0]))
			n[id]++
			args[id] = a
		case <-time.After(50 * time.Millisecond):
			return n, args
		}
	}
}

// announced waits until e's router has announced n on_leave for sessions
// of nodes that left (with no other node left to check with, the check
// answers on a goroutine of its own: memMesh's sync does not wait for it).
func announced(t *testing.T, e *env, n uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for e.r.MeshStats().PresenceAnnounced.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d on_leave announced after 2 s, want %d", e.r.MeshStats().PresenceAnnounced.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func sortedIDs(m map[uint64]int) []uint64 {
	var ids []uint64
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// TestMeshOnLeaveForSessionsOfADeadNode: a node that dies (MeshNodeDown,
// nothing more from it) announced no wamp.session.on_leave for its
// sessions, so a presence service on another node kept them joined for
// good. Three nodes: A's sessions a1..a3 join before anyone subscribes; B
// subscribes to on_leave exactly, C with a prefix; a4 joins on A after;
// a1 leaves (its on_leave goes out as always); then A dies. Each
// subscriber must get on_leave for a2, a3 and a4 once, with authid and
// authrole, and nothing more for a1 or for C's own session; the last
// on_leave subscriber going stops the tracking (the mesh interest in
// on_join it took goes too).
func TestMeshOnLeaveForSessionsOfADeadNode(t *testing.T) {
	mm, es := newMemMesh(t, 3, 2, nil)
	var a []*tc
	for i := 0; i < 3; i++ {
		a = append(a, es[0].join(proto.JSON))
	}
	c1 := es[2].join(proto.JSON)
	mm.sync()
	monB := es[1].join(proto.JSON)
	subB := monB.subscribe(metaSessionOnLeave, nil)
	monC := es[2].join(proto.CBOR)
	subC := monC.subscribe("wamp.session.", map[string]any{"match": "prefix"})
	mm.sync()
	a = append(a, es[0].join(proto.MsgPack))
	mm.sync()
	a[0].goodbye()
	for _, mon := range []struct {
		c   *tc
		sub uint64
	}{{monB, subB}, {monC, subC}} {
		if n, _ := leaveEvents(t, mm, mon.c, mon.sub); n[a[0].id] != 1 || len(n) != 1 {
			t.Fatalf("a1 left: on_leave %v, want a1's (%d) once", n, a[0].id)
		}
	}

	mm.kill(0)
	want := []uint64{a[1].id, a[2].id, a[3].id}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	for _, mon := range []struct {
		c   *tc
		sub uint64
	}{{monB, subB}, {monC, subC}} {
		n, args := leaveEvents(t, mm, mon.c, mon.sub)
		got := sortedIDs(n)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("node A died: on_leave for %v (counts %v), want once for each of a2..a4 %v", got, n, want)
		}
		for id, k := range n {
			if k != 1 {
				t.Fatalf("node A died: on_leave for %d %d times, want once", id, k)
			}
			if a := args[id]; len(a) != 3 || a[1] == "" || a[2] != "anonymous" {
				t.Fatalf("on_leave arguments %v, want [session, authid, authrole]", a)
			}
		}
	}
	if got := es[1].r.MeshStats().PresenceAnnounced.Load(); got != 3 {
		t.Fatalf("B counted %d on_leave announced, want 3", got)
	}
	_ = c1

	// The last on_leave subscriber of B going ends B's tracking.
	rm := es[1].r.Realm("realm1")
	monB.goodbye()
	mm.sync()
	if rm.pres.Load() != nil {
		t.Fatal("B keeps the other nodes' sessions with no on_leave subscriber")
	}
	if mm.nodes[1].interested("realm1", []byte(metaSessionOnJoin)) {
		t.Fatal("B keeps mesh interest in on_join with no on_leave subscriber")
	}
}

// TestMeshOnLeaveTrackingBounded: a node keeps at most maxPresence other
// nodes' sessions per realm for their on_leave; past it those left out
// are counted (PresenceUntracked) and their on_leave are not announced.
func TestMeshOnLeaveTrackingBounded(t *testing.T) {
	defer func(n int) { maxPresence = n }(maxPresence)
	maxPresence = 3
	mm, es := newMemMesh(t, 2, 1, nil)
	for i := 0; i < 2; i++ {
		es[0].join(proto.JSON) // gathered
	}
	mm.sync()
	mon := es[1].join(proto.JSON)
	sub := mon.subscribe(metaSessionOnLeave, nil)
	mm.sync()
	for i := 0; i < 3; i++ {
		es[0].join(proto.JSON) // from on_join: one fits
	}
	mm.sync()
	mm.kill(0)
	announced(t, es[1], 3)
	n, _ := leaveEvents(t, mm, mon, sub)
	if len(n) != 3 {
		t.Fatalf("5 sessions of a dead node, 3 kept: on_leave for %d", len(n))
	}
	if got := es[1].r.MeshStats().PresenceUntracked.Load(); got != 2 {
		t.Fatalf("PresenceUntracked %d, want 2", got)
	}
}

// TestMeshOnLeaveNotForSessionsHeldElsewhere: the sessions a node keeps
// for a dead node's slot are checked with the other nodes first: one that
// another live node holds (a node that restarted under the same name, or
// another node with the same slot) is not announced.
func TestMeshOnLeaveNotForSessionsHeldElsewhere(t *testing.T) {
	mm, es := newMemMesh(t, 3, 1, nil)
	a := es[0].join(proto.JSON)
	c := es[2].join(proto.JSON)
	mon := es[1].join(proto.JSON)
	sub := mon.subscribe(metaSessionOnLeave, nil)
	mm.sync()
	// C's session as if it had A's slot.
	rm := es[1].r.Realm("realm1")
	pr := rm.pres.Load()
	pr.mu.Lock()
	forged := c.id>>10<<10 | uint64(MeshSlot("nodeA"))
	pr.sess[forged] = remoteSession{"x", "anonymous"}
	pr.mu.Unlock()
	rm2 := es[2].r.Realm("realm1")
	rm2.mu.Lock()
	rm2.members[forged] = rm2.members[c.id]
	rm2.mu.Unlock()
	mm.kill(0)
	n, _ := leaveEvents(t, mm, mon, sub)
	if len(n) != 1 || n[a.id] != 1 {
		t.Fatalf("node A died: on_leave %v, want a's (%d) alone: C holds the other", n, a.id)
	}
	rm2.mu.Lock()
	delete(rm2.members, forged)
	rm2.mu.Unlock()
}

// TestMeshOnLeaveTrackingRacesItsGather: joins and leaves that race the
// gather that starts the tracking. While B's gather is under way, a
// session of A that A's answer still lists (written before it left)
// leaves, and another joins; the answer comes after both events. When A
// dies, B announces the one that joined meanwhile and the one that was
// there, not the one whose own on_leave B's subscriber already got.
func TestMeshOnLeaveTrackingRacesItsGather(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	stay := es[0].join(proto.JSON)
	goes := es[0].join(proto.JSON)
	mm.sync()
	rmA := es[0].r.Realm("realm1")
	answer := es[0].r.shards[0].answerSessions(rmA) // A's answer, written now

	mm.nodes[1].gatherHold.Store(true)
	mon := es[1].join(proto.JSON)
	sub := mon.subscribe(metaSessionOnLeave, nil)
	mm.sync()
	rm := es[1].r.Realm("realm1")
	pr := rm.pres.Load()
	goes.goodbye()
	joined := es[0].join(proto.JSON)
	mm.sync()
	if n, _ := leaveEvents(t, mm, mon, sub); len(n) != 1 || n[goes.id] != 1 {
		t.Fatalf("a session of A left: on_leave %v", n)
	}
	rm.presenceGathered(pr, [][]byte{answer}, nil) // the answer, late
	mm.nodes[1].releaseGathers()
	mm.sync()

	mm.kill(0)
	announced(t, es[1], 2)
	n, _ := leaveEvents(t, mm, mon, sub)
	if len(n) != 2 || n[stay.id] != 1 || n[joined.id] != 1 {
		t.Fatalf("node A died: on_leave %v, want once for %d (there before) and %d (joined during the gather), none for %d (left during it)", n, stay.id, joined.id, goes.id)
	}
}

// TestMeshOnLeaveTrackingGathersAgain: the gather that starts the
// tracking went without a node's answer (it did not answer in time): it
// is made again (every presenceRetry) until that node answers, so that
// the sessions it had before are announced when it dies.
func TestMeshOnLeaveTrackingGathersAgain(t *testing.T) {
	defer func(d time.Duration) { presenceRetry = d }(presenceRetry)
	presenceRetry = 20 * time.Millisecond
	mm, es := newMemMesh(t, 2, 1, nil)
	a := es[0].join(proto.JSON)
	mm.sync()
	mm.nodes[0].mute.Store(true)
	mon := es[1].join(proto.JSON)
	sub := mon.subscribe(metaSessionOnLeave, nil)
	mm.sync()
	// kept waits until B's tracking, between two gathers, keeps n.
	kept := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for es[1].r.MeshPresence("realm1") != n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: B keeps %d of A's sessions after 2 s, want %d", what, es[1].r.MeshPresence("realm1"), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	kept(0, "A does not answer")
	mm.nodes[0].mute.Store(false)
	kept(1, "A answers again")
	mm.kill(0)
	announced(t, es[1], 1)
	if n, _ := leaveEvents(t, mm, mon, sub); len(n) != 1 || n[a.id] != 1 {
		t.Fatalf("node A died: on_leave %v, want %d's once", n, a.id)
	}
}

// A client that subscribes to on_leave and unsubscribes in a loop starts
// a tracking, so a gather of every other node's sessions, at each turn:
// each makes every other node encode up to 4 MiB of its sessions on its
// shard 0, outside the meta calls' walk budget. A realm sends at most one
// such gather per presenceRetry; the last tracking still starts complete.
// Before, 40 turns sent 40 gathers.
func TestMeshOnLeaveTrackingChurnGathersSpaced(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	es[0].join(proto.JSON)
	es[0].join(proto.JSON)
	mm.sync()
	mon := es[1].join(proto.JSON)
	const turns = 40
	for range turns {
		id := mon.subscribe(metaSessionOnLeave, nil)
		req := mon.nextReq()
		mon.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: req, ID: id})
		mon.expect(proto.CodeUnsubscribed)
	}
	mon.subscribe(metaSessionOnLeave, nil)
	deadline := time.Now().Add(3 * time.Second)
	for es[1].r.MeshPresence("realm1") != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("B keeps %d of A's 2 sessions 3 s after the churn", es[1].r.MeshPresence("realm1"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if q := mm.nodes[1].queries.Load(); q > 3 {
		t.Fatalf("%d turns of subscribing to on_leave sent %d gathers of A's sessions, want at most 3", turns, q)
	}
}
