package route

import (
	"strconv"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// subsCacheHeld returns the subscription pointers shard i's cache of rm
// holds in its lookup results (their capacities).
// It checks the cache's own count of them against them.
func (e *env) subsCacheHeld(rm *Realm, i int) (n int) {
	var counted int
	e.execs[i].do(func() {
		for _, subs := range rm.l1[i].subs.m {
			n += cap(subs)
		}
		counted = rm.l1[i].subs.held
	})
	if counted != n {
		e.t.Fatalf("the cache counts %d subscription pointers, holds %d", counted, n)
	}
	return n
}

// TestSubscriptionCacheBoundedInMatches: the shards' lookup caches bound
// the subscriptions their results hold, not only their number of topics.
// One anonymous session subscribes to every prefix of a long topic and
// publishes to 1,016 topics under it: each lookup result holds a pointer
// per prefix, and the publisher's shard cached all of them. With 4,000
// prefixes (about 9 MB of the session's subscription_bytes share; 1,000
// here, for the test's time) that was ~32 MiB per shard and realm in no
// budget (twice that with the realm's 4,096 wildcard patterns matching
// too), for as long as no change to the patterns dropped them.
func TestSubscriptionCacheBoundedInMatches(t *testing.T) {
	e := newEnv(t, 1, nil)
	rm := e.r.Realm("realm1")
	c := e.joinOn(0, proto.JSON)
	const depth = 500
	stem := strings.Repeat("a", depth)
	for n := 1; n <= depth; {
		// In batches within the test peer's inbox.
		k := 0
		for ; k < 1000 && n <= depth; k, n = k+1, n+1 {
			c.sendAsync(&proto.Message{Type: proto.CodeSubscribe, Request: c.nextReq(), Dict: c.opts(map[string]any{"match": "prefix"}), URI: []byte(stem[:n])})
		}
		for ; k > 0; k-- {
			c.expect(proto.CodeSubscribed)
		}
	}
	// No event is delivered (the eligible list names no session): the
	// test is about the lookups.
	opts := c.opts(map[string]any{"eligible": []any{1}})
	// Within l1Max with the meta topics' entries (on_join, on_create,
	// on_subscribe).
	const topics = l1Max - 8
	for i := 0; i < topics; i++ {
		c.sendAsync(&proto.Message{Type: proto.CodePublish, Request: c.nextReq(), Dict: opts, URI: []byte(stem + ".t" + strconv.Itoa(i))})
	}
	e.sync()
	held := e.subsCacheHeld(rm, 0)
	t.Logf("the cache holds %d subscription pointers (%d KiB)", held, held*8>>10)
	if held > l1MaxSubs+2*depth {
		t.Fatalf("the shard's cache holds %d subscription pointers (%d KiB), want at most %d and one result", held, held*8>>10, l1MaxSubs)
	}
	if b := l1SubsBound(100_000); b < 8*(proto.MaxURILen+100_000) {
		t.Fatalf("with 100,000 wildcard patterns allowed the bound is %d: less than eight worst-case topics", b)
	}
	// A change to a pattern drops the entries it matches, and their count.
	c.subscribe(stem+".t2", map[string]any{"match": "prefix"})
	c.sendAsync(&proto.Message{Type: proto.CodePublish, Request: c.nextReq(), Dict: opts, URI: []byte(stem + ".t0")})
	e.sync()
	e.subsCacheHeld(rm, 0)
	// Still a cache: the last topic is found without a lookup.
	before := e.misses(rm, 0)
	c.sendAsync(&proto.Message{Type: proto.CodePublish, Request: c.nextReq(), Dict: opts, URI: []byte(stem + ".t" + strconv.Itoa(topics-1))})
	e.sync()
	if after := e.misses(rm, 0); after != before {
		t.Fatalf("the last topic published missed the cache (%d misses)", after-before)
	}
}
