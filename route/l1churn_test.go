package route

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// Tests through the protocol of the shards' lookup caches (Realm.l1): a
// change to the tables drops only the cache entries it can alter, and
// every lookup on every shard sees every change at once.

// misses returns shard i's count of realm lookups that missed its cache.
func (e *env) misses(rm *Realm, i int) (n uint64) {
	e.execs[i].do(func() { n = rm.l1[i].misses })
	return n
}

// TestLookupCacheSurvivesUnrelatedChurn: a session that subscribes and
// unsubscribes (registers and unregisters) in a loop, on URIs and patterns
// that do not match the victim's, does not make the victim's PUBLISH or
// CALL miss its shard's cache (each miss walks every wildcard pattern of
// the realm). Before the change, every such change cleared every shard's
// cache of both tables.
func TestLookupCacheSurvivesUnrelatedChurn(t *testing.T) {
	churns := []struct {
		reg   bool
		match string
		uri   string
	}{
		{false, "exact", "com.attack.t"},
		{false, "prefix", "com.attack."},
		{false, "wildcard", "com..t"}, // the victim's topic has 4 components
		{false, "wildcard", "com.attack.."},
		{true, "exact", "com.attack.p"},
		{true, "prefix", "com.attack."},
		{true, "wildcard", "com..p"},
		{true, "wildcard", "com.attack.."},
	}
	for _, ch := range churns {
		for _, shard := range []int{0, 1} {
			kind := "subscribe"
			if ch.reg {
				kind = "register"
			}
			t.Run(fmt.Sprintf("%s/%s/%s/shard=%d", kind, ch.match, ch.uri, shard), func(t *testing.T) {
				e := newEnv(t, 2, nil)
				rm := e.r.Realm("realm1")
				const topic, proc = "com.victim.x.t", "com.victim.x.p"
				sub := e.joinOn(1, proto.JSON)
				subID := sub.subscribe(topic, nil)
				wildID := sub.subscribe("com.victim..t", map[string]any{"match": "wildcard"})
				callee := e.joinOn(1, proto.JSON)
				regID := callee.register("com.victim.", map[string]any{"match": "prefix"})
				victim := e.joinOn(0, proto.JSON)
				attacker := e.joinOn(shard, proto.JSON)
				round := func() {
					t.Helper()
					victim.publish(topic, nil, nil, nil)
					got := map[uint64]bool{}
					for range 2 {
						got[sub.expect(proto.CodeEvent).ID] = true
					}
					if !got[subID] || !got[wildID] {
						t.Fatalf("events for subscriptions %v, want %d and %d", got, subID, wildID)
					}
					req := victim.call(proc, nil, nil, nil)
					inv := callee.expect(proto.CodeInvocation)
					if inv.ID != regID {
						t.Fatalf("INVOCATION for registration %d, want %d", inv.ID, regID)
					}
					callee.yield(inv.Request, nil, nil)
					if m := victim.expect(proto.CodeResult); m.Request != req {
						t.Fatalf("RESULT for %d, want %d", m.Request, req)
					}
				}
				churn := func() {
					t.Helper()
					o := map[string]any{"match": ch.match}
					if ch.reg {
						id := attacker.register(ch.uri, o)
						attacker.send(&proto.Message{Type: proto.CodeUnregister, Request: attacker.nextReq(), ID: id})
						attacker.expect(proto.CodeUnregistered)
					} else {
						id := attacker.subscribe(ch.uri, o)
						attacker.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: attacker.nextReq(), ID: id})
						attacker.expect(proto.CodeUnsubscribed)
					}
				}
				// Warm the caches: the victim's URIs, and the meta topics
				// the attacker's changes announce on.
				round()
				churn()
				before := e.misses(rm, 0)
				for range 20 {
					churn()
				}
				round()
				if got := e.misses(rm, 0) - before; got != 0 {
					t.Fatalf("shard 0 missed its cache %d times after the unrelated churn, want 0", got)
				}
			})
		}
	}
}

// TestLookupCacheSeesEveryChange drives random subscribe/unsubscribe and
// register/unregister of exact, prefix and wildcard entries, made from
// sessions on every shard, and after each change publishes and calls from
// every shard (whose caches hold the URIs from the rounds before): every
// publication reaches exactly the subscriptions that match its topic, every
// call goes to the registration the WAMP rules pick, or fails with
// no_such_procedure. Now and then an unrelated session makes more changes
// than the shards' logs keep (l1LogSize) between the change and the check.
func TestLookupCacheSeesEveryChange(t *testing.T) {
	const shards = 3
	e := newEnv(t, shards, nil)
	topics := []string{"com.x.t", "com.y.u"}
	subPats := []struct{ match, uri string }{
		{"exact", "com.x.t"}, {"prefix", "com.x."}, {"prefix", "com."}, {"wildcard", "com..t"},
		{"wildcard", "com.x."}, {"exact", "com.x.u"}, {"prefix", "com.y."}, {"wildcard", "com..u"},
		{"exact", "com.y.u"}, {"wildcard", "..u"},
	}
	procs := []string{"com.x.p", "com.y.q"}
	// Each procedure's candidates in the order WAMP picks among them:
	// exact, then the longest prefix, then the wildcard pattern whose
	// wildcards come latest.
	regPats := []struct{ match, uri string }{
		{"exact", "com.x.p"}, {"prefix", "com.x."}, {"prefix", "com."}, {"wildcard", "com.x."}, {"wildcard", "com..p"},
		{"exact", "com.y.q"}, {"wildcard", "com.y."}, {"wildcard", "..q"},
	}
	order := map[string][]int{"com.x.p": {0, 1, 2, 3, 4}, "com.y.q": {5, 2, 6, 7}}

	subs := make([]*tc, len(subPats))
	subIDs := make([]uint64, len(subPats))
	for i := range subs {
		subs[i] = e.joinOn(i%shards, proto.JSON)
	}
	callees := make([]*tc, len(regPats))
	regIDs := make([]uint64, len(regPats))
	for i := range callees {
		callees[i] = e.joinOn((i+1)%shards, proto.JSON)
	}
	clients := make([]*tc, shards)
	for i := range clients {
		clients[i] = e.joinOn(i, proto.JSON)
	}
	junk := e.joinOn(0, proto.JSON)

	check := func(step int) {
		t.Helper()
		for _, c := range clients {
			for _, topic := range topics {
				c.publish(topic, nil, nil, nil)
			}
		}
		e.sync()
		for i, s := range subs {
			want := 0
			if subIDs[i] != 0 {
				for _, topic := range topics {
					if refMatches(subPats[i].match, subPats[i].uri, topic) {
						want += shards
					}
				}
			}
			for n := 0; ; n++ {
				select {
				case m := <-s.peer.in:
					if m.Type != proto.CodeEvent || m.ID != subIDs[i] {
						t.Fatalf("step %d: subscriber %s %q got %v %s", step, subPats[i].match, subPats[i].uri, m.Type, describe(m))
					}
					continue
				default:
				}
				if n != want {
					t.Fatalf("step %d: subscriber %s %q got %d events, want %d", step, subPats[i].match, subPats[i].uri, n, want)
				}
				break
			}
		}
		for _, c := range clients {
			for _, proc := range procs {
				want := -1
				for _, k := range order[proc] {
					if regIDs[k] != 0 {
						want = k
						break
					}
				}
				req := c.call(proc, nil, nil, nil)
				if want < 0 {
					c.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
					continue
				}
				inv := callees[want].expect(proto.CodeInvocation)
				if inv.ID != regIDs[want] {
					t.Fatalf("step %d: %s went to registration %d, want %d", step, proc, inv.ID, regIDs[want])
				}
				callees[want].yield(inv.Request, nil, nil)
				if m := c.expect(proto.CodeResult); m.Request != req {
					t.Fatalf("step %d: RESULT for %d, want %d", step, m.Request, req)
				}
			}
		}
		for i, c := range callees {
			select {
			case m := <-c.peer.in:
				t.Fatalf("step %d: callee %s %q got %v %s", step, regPats[i].match, regPats[i].uri, m.Type, describe(m))
			default:
			}
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	toggle := func() {
		t.Helper()
		if k := rng.IntN(len(subPats) + len(regPats)); k < len(subPats) {
			s, p := subs[k], subPats[k]
			if subIDs[k] == 0 {
				subIDs[k] = s.subscribe(p.uri, map[string]any{"match": p.match})
			} else {
				s.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: s.nextReq(), ID: subIDs[k]})
				s.expect(proto.CodeUnsubscribed)
				subIDs[k] = 0
			}
		} else {
			k -= len(subPats)
			c, p := callees[k], regPats[k]
			if regIDs[k] == 0 {
				regIDs[k] = c.register(p.uri, map[string]any{"match": p.match})
			} else {
				c.send(&proto.Message{Type: proto.CodeUnregister, Request: c.nextReq(), ID: regIDs[k]})
				c.expect(proto.CodeUnregistered)
				regIDs[k] = 0
			}
		}
	}
	check(0)
	for step := 1; step <= 120; step++ {
		toggle()
		if step%15 == 0 {
			// More changes than the logs keep since the last check.
			for range l1LogSize {
				id := junk.subscribe("com.junk", nil)
				junk.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: junk.nextReq(), ID: id})
				junk.expect(proto.CodeUnsubscribed)
				id = junk.register("com.junk", nil)
				junk.send(&proto.Message{Type: proto.CodeUnregister, Request: junk.nextReq(), ID: id})
				junk.expect(proto.CodeUnregistered)
			}
		}
		check(step)
	}
}
