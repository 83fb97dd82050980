package route

import (
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// wamp.registration.remove_callee and wamp.subscription.remove_subscriber
// of a session of another node are carried out there (meshOwned): the
// session's node looks for it among the callees of the registration (the
// subscribers of the subscription on its loop), a walk of up to every
// session of the realm, as on one node, where the same call is charged one
// entry per callee (subscriber) it may visit (metaVisits). The caller's
// node was charged for the other nodes' answers by their bytes and
// meshAskCost alone: a session on node A that named node B's session that
// is no callee (subscriber) made B walk its list of 2,000 272-276 times in
// the walk budget's burst with the clock stopped, where one node's rule
// allows 32. Now the session's node's answer is charged meshScanMin
// (remove_subscriber), or the callees the directory records there for
// the registration (remove_callee; remoteVisit).
func TestMeshRemoteRemoveVisitsCharged(t *testing.T) {
	for _, proc := range []string{"wamp.subscription.remove_subscriber", "wamp.registration.remove_callee"} {
		t.Run(proc, func(t *testing.T) {
			mm, es := newMemMesh(t, 2, 1, nil)
			const crowd = 2000
			var id uint64
			for i := 0; i < crowd; i++ {
				c := es[1].join(proto.MsgPack)
				if proc == "wamp.subscription.remove_subscriber" {
					id = c.subscribe("com.crowd", nil)
				} else {
					id = c.register("com.crowd", map[string]any{"invoke": "roundrobin"})
				}
			}
			x := es[1].join(proto.MsgPack) // neither subscriber nor callee
			e := es[0]
			att := e.join(proto.MsgPack)
			mm.sync()
			want := proto.URINoSuchSubscription
			if proc == "wamp.registration.remove_callee" {
				want = proto.URINoSuchRegistration
			}
			req := att.call(proc, nil, []any{id, x.id}, nil)
			mm.sync()
			att.expectError(proto.CodeCall, req, want)

			e.advance(time.Minute) // the budget full; the clock stops here
			q0 := mm.nodes[0].queries.Load()
			const rounds, perRound = 6, maxSessionGathers + maxSessionGatherQueue
			for range rounds {
				for range perRound {
					att.call(proc, nil, []any{id, x.id}, nil)
				}
				mm.sync()
				answeredAtOnce(att)
			}
			walks := mm.nodes[0].queries.Load() - q0
			// Charged as on one node, an entry per callee (subscriber)
			// visited, the burst pays for walkBurst/crowd walks of node
			// B's list; the session's 16 gathers under way complete
			// before its debt applies.
			lim := int64(walkBurst/crowd + 2*maxSessionGathers)
			t.Logf("%d calls of %s with the clock stopped: node B walked its %d-entry list %d times (limit %d)", rounds*perRound, proc, crowd, walks, lim)
			if walks > lim {
				t.Fatalf("%s from a session on node A made node B walk its %d-entry list %d times with the clock stopped; the walk budget allows %d", proc, crowd, walks, lim)
			}
		})
	}
}

// TestMeshRemoteRemoveCalleeChargedByDirectory: a remove_callee of
// another node's session is charged, for that node's walk, the callees
// the directory records there for the registration (at least
// meshRemoveMin), not meshScanMin whatever the registration's size: an
// admin on node A removing node B's stale callees, one per registration,
// was charged 8,192 entries each besides the ask, so with the clock
// stopped the walk budget's burst answered 16 of 200 (the rest waiting
// about 16 ms each, 16 s for 1,000), where their walks are of a list of
// one. TestMeshRemoteRemoveVisitsCharged keeps the charge of a session
// that is no callee on a node with a 2,000-callee list.
func TestMeshRemoteRemoveCalleeChargedByDirectory(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	const n = 200
	type stale struct{ reg, sess uint64 }
	var all []stale
	for i := range n {
		c := es[1].join(proto.MsgPack)
		all = append(all, stale{c.register("com.stale."+strconv.Itoa(i), nil), c.id})
	}
	admin := es[0].join(proto.MsgPack)
	mm.sync()
	es[0].advance(time.Minute) // the budget full; the clock stops here
	removed, refused := 0, 0
	for i := 0; i < n; i += maxSessionGathers {
		for _, s := range all[i:min(i+maxSessionGathers, n)] {
			admin.call("wamp.registration.remove_callee", nil, []any{s.reg, s.sess}, nil)
		}
		mm.sync()
		r, f := answeredAtOnce(admin)
		removed, refused = removed+r, refused+f
	}
	if removed < n {
		t.Fatalf("with the clock stopped, %d of %d removals of node B's callees (each the only callee of its registration) answered from node A (%d refused, the others waiting)", removed, n, refused)
	}
	mm.sync()
	rm := es[1].r.Realm("realm1")
	for i, s := range all {
		rm.mu.RLock()
		_, has := rm.regByID[s.reg]
		rm.mu.RUnlock()
		if has {
			t.Fatalf("registration %d (com.stale.%d) still there after its callee was removed", s.reg, i)
		}
	}
}

// TestMeshRemoteRemoveSubscriberChargedByWalk: a remove_subscriber of
// another node's session is charged, for that node's walk, what that node
// says it walked (the subscribers it has of the subscription, as one node
// charges), not meshScanMin whatever the subscription's size: an admin on
// node A removing node B's stale subscribers, one per subscription, was
// charged 8,192 entries each besides the ask (1,000 took about 16 s of
// the walk budget). A node of the previous release says nothing, and is
// charged meshScanMin as before; so is a removal naming a session that is
// no subscriber (TestMeshRemoteRemoveVisitsCharged).
func TestMeshRemoteRemoveSubscriberChargedByWalk(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	const n = 200
	type stale struct{ sub, sess uint64 }
	var all []stale
	for i := range n {
		c := es[1].join(proto.MsgPack)
		all = append(all, stale{c.subscribe("com.stale."+strconv.Itoa(i), nil), c.id})
	}
	admin := es[0].join(proto.MsgPack)
	mm.sync()
	// Its RESULT has no arguments, as one node's (the count node B
	// sends is for the charge).
	admin.call("wamp.subscription.remove_subscriber", nil, []any{all[0].sub, all[0].sess}, nil)
	mm.sync()
	if m := admin.expect(proto.CodeResult); m.Args.Present() {
		t.Fatalf("remove_subscriber of node B's subscriber answered %s, want a RESULT without arguments", describe(m))
	}
	es[0].advance(time.Minute) // the budget full; the clock stops here
	removed, refused := 1, 0
	for i := 1; i < n; i += maxSessionGathers {
		for _, s := range all[i:min(i+maxSessionGathers, n)] {
			admin.call("wamp.subscription.remove_subscriber", nil, []any{s.sub, s.sess}, nil)
		}
		mm.sync()
		r, f := answeredAtOnce(admin)
		removed, refused = removed+r, refused+f
	}
	t.Logf("with the clock stopped, %d of %d removals of node B's subscribers answered from node A (%d refused)", removed, n, refused)
	if removed < n {
		t.Fatalf("with the clock stopped, %d of %d removals of node B's subscribers (each the only subscriber of its subscription) answered from node A (%d refused, the others waiting)", removed, n, refused)
	}
	mm.sync()
	rm := es[1].r.Realm("realm1")
	for i, s := range all {
		rm.mu.RLock()
		_, has := rm.subByID[s.sub]
		rm.mu.RUnlock()
		if has {
			t.Fatalf("subscription %d (com.stale.%d) still there after its subscriber was removed", s.sub, i)
		}
	}
}
