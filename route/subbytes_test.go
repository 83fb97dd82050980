package route

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The bytes sessions' subscriptions hold are bounded on the router
// (Config.MaxSubscriptionBytes), a client address or authid at most a
// quarter of them. Before, only the count was bounded per session
// (limits.subscriptions, 65,536): one connection's SUBSCRIBEs of 4 KB
// prefixes held 4,430 bytes of heap each, 290 MB per connection, and an
// address may open 1,024 (found attacking the broker's per-session
// bounds with long URIs).
func TestSubscriptionBytesBounded(t *testing.T) {
	const budget = 4 << 20
	e := newEnv(t, 2, func(c *Config) { c.MaxSubscriptionBytes = budget })
	a := e.connectFrom(0, proto.MsgPack, "198.51.100.7:4000")
	a.hello("realm1", allFeatures, nil)
	a.id = a.expect(proto.CodeWelcome).ID
	long := strings.Repeat("x", 4000)
	quarter := budget / 4 / (4000 + 8 + subOverhead)
	var refusedAt int
	for i := 0; i < 2*quarter; i++ {
		req := a.nextReq()
		a.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: a.opts(map[string]any{"match": "prefix"}), URI: []byte(fmt.Sprintf("%s%08d", long, i))})
		if m := a.recv(); m.Type == proto.CodeError {
			if string(m.URI) != proto.URIUnavailable {
				t.Fatalf("SUBSCRIBE %d: ERROR %s, want %s", i, m.URI, proto.URIUnavailable)
			}
			refusedAt = i
			break
		}
	}
	st := e.r.Stats()
	t.Logf("one address's SUBSCRIBEs of 4 KB: refused at %d (its quarter of %d bytes: %d), %d bytes held, %d refused", refusedAt, budget, quarter, st.SubscriptionBytes, st.SubscriptionsRefused)
	if refusedAt != quarter || st.SubscriptionsRefused != 1 || st.SubscriptionBytes > budget/4 {
		t.Fatalf("refused at SUBSCRIBE %d, want %d; %d refused, %d bytes held", refusedAt, quarter, st.SubscriptionsRefused, st.SubscriptionBytes)
	}
	// Another connection from the same address shares the quarter; one
	// from another address has its own, joining a's subscriptions too.
	a2 := e.connectFrom(1, proto.MsgPack, "198.51.100.7:4001")
	a2.hello("realm1", allFeatures, nil)
	a2.expect(proto.CodeWelcome)
	req := a2.nextReq()
	other := long + "-a2"
	a2.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: a2.opts(nil), URI: []byte(other)})
	a2.expectError(proto.CodeSubscribe, req, proto.URIUnavailable)
	b := e.connectFrom(1, proto.MsgPack, "203.0.113.9:4000")
	b.hello("realm1", allFeatures, nil)
	b.expect(proto.CodeWelcome)
	for i := 0; i < quarter; i++ {
		b.subscribe(fmt.Sprintf("%s%08d", long, i), map[string]any{"match": "prefix"})
	}
	// What a's session leaves goes back to its address.
	a.goodbye()
	e.sync()
	a2.subscribe(other, nil)
	if st := e.r.Stats(); st.SubscriptionBytes != int64(quarter)*(4008+subOverhead)+subCost(proto.MatchExact, other) {
		t.Fatalf("%d bytes held after a left, want b's %d and a2's one", st.SubscriptionBytes, int64(quarter)*(4008+subOverhead))
	}
}

// An authenticated session's quarter of Config.MaxSubscriptionBytes is its
// realm's authid's: users are configured per realm, so one realm's "alice"
// filling her quarter leaves another realm's "alice" hers. Before, the
// share was keyed by the authid alone (as were the retained events' and
// testaments' shares, which use the same owner).
func TestSubscriptionBytesAuthidQuarterPerRealm(t *testing.T) {
	const budget = 1 << 20
	e := newEnv(t, 2, func(c *Config) {
		c.MaxSubscriptionBytes = budget
		c.Realms = append(c.Realms, RealmConfig{Name: "tenant2", Authenticators: []Authenticator{trustAuth{}}})
	})
	login := func(realm, authid string) *tc {
		c := e.connect(proto.JSON)
		c.hello(realm, allFeatures, map[string]any{"authmethods": []any{"x-trust"}, "authid": authid})
		c.id = c.expect(proto.CodeWelcome).ID
		return c
	}
	long := strings.Repeat("x", 4000)
	a1 := login("trusted", "alice")
	refused := false
	for i := 0; i < budget/(4000+subOverhead); i++ {
		req := a1.nextReq()
		a1.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: a1.opts(nil), URI: []byte(fmt.Sprintf("%s%08d", long, i))})
		if m := a1.recv(); m.Type == proto.CodeError {
			if string(m.URI) != proto.URIUnavailable {
				t.Fatalf("SUBSCRIBE %d: ERROR %s, want %s", i, m.URI, proto.URIUnavailable)
			}
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("the first realm's alice was never refused: no quarter applied")
	}
	a2 := login("tenant2", "alice")
	req := a2.nextReq()
	a2.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: a2.opts(nil), URI: []byte(long)})
	if m := a2.recv(); m.Type != proto.CodeSubscribed {
		t.Fatalf("the other realm's alice, holding nothing, got %v %s: it shares the first realm's alice's quarter", m.Type, describe(m))
	}
}

// Owners that take all the subscription bytes they may never fill the
// router: each stays below what is left free, so k of them hold at most
// k/(k+1) of Config.MaxSubscriptionBytes and a newcomer still subscribes.
// Before, four owners at their quarters held all of it and every other
// client's SUBSCRIBE was refused (testaments are counted the same way).
func TestSubscriptionBytesOwnersLeaveRoom(t *testing.T) {
	const budget = 2 << 20
	e := newEnv(t, 2, func(c *Config) { c.MaxSubscriptionBytes = budget })
	long := strings.Repeat("x", 4000)
	cost := int64(4000 + 8 + subOverhead)
	quarter := int(budget / 4 / cost)
	var held []int
	for k := 0; k < 6; k++ {
		s := e.connectFrom(k%2, proto.MsgPack, fmt.Sprintf("198.51.100.%d:4000", 7+k))
		s.hello("realm1", allFeatures, nil)
		s.expect(proto.CodeWelcome)
		n := 0
		for ; n <= quarter; n++ {
			req := s.nextReq()
			s.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: s.opts(map[string]any{"match": "prefix"}), URI: []byte(fmt.Sprintf("%s%02d%08d", long, k, n))})
			if m := s.recv(); m.Type == proto.CodeError {
				if a := argsOf(m); len(a) != 1 || !strings.Contains(fmt.Sprint(a[0]), "less than the router has left free") {
					t.Fatalf("owner %d refused with %s, which does not name the room left free", k, describe(m))
				}
				break
			}
		}
		held = append(held, n)
	}
	st := e.r.Stats()
	t.Logf("six owners in turn held %v subscriptions of %d bytes (a quarter: %d); %d of %d bytes held", held, cost, quarter, st.SubscriptionBytes, budget)
	for k, n := range held {
		if n > quarter || n == 0 {
			t.Fatalf("owner %d held %d subscriptions (all: %v), want 1 to its quarter %d", k, n, held, quarter)
		}
	}
	if held[3] >= quarter || st.SubscriptionBytes > budget-cost {
		t.Fatalf("the owners held %v, %d bytes: the fourth its quarter or the router full", held, st.SubscriptionBytes)
	}
	c := e.connectFrom(1, proto.MsgPack, "203.0.113.9:4000")
	c.hello("realm1", allFeatures, nil)
	c.expect(proto.CodeWelcome)
	c.subscribe("com.newcomer", nil)
}
