package route

import (
	"strconv"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A wildcard pattern's index is counted once, to the owner whose
// SUBSCRIBE or REGISTER made it (subscription.maker, registration.maker).
// It stayed counted to that owner after all its sessions left the
// pattern, as long as another owner's session held it: a maker whose
// patterns a joiner held had its share spent on patterns it no longer
// held (248,976 of 262,144 bytes) and was refused its next ones. The
// count now moves to an owner still holding the pattern when the maker's
// last hold goes, so that the joiner, who holds it, pays for it, and it
// goes with the pattern's last holder.
func TestPatternMakerShareFollowsHolders(t *testing.T) {
	for _, kind := range []string{"subscribe", "register"} {
		t.Run(kind, func(t *testing.T) {
			const budget = 1 << 20 // a quarter, 256 KiB, an owner's
			e := newEnv(t, 2, func(c *Config) { c.MaxSubscriptionBytes, c.MaxRegistrationBytes = budget, budget })
			code, ok, undo, undone := proto.CodeSubscribe, proto.CodeSubscribed, proto.CodeUnsubscribe, proto.CodeUnsubscribed
			b, hold, opt := &e.r.subBytes, subHoldCost, wildcardOpt
			if kind == "register" {
				code, ok, undo, undone = proto.CodeRegister, proto.CodeRegistered, proto.CodeUnregister, proto.CodeUnregistered
				b, hold, opt = &e.r.regBytes, regHoldCost, map[string]any{"match": "wildcard", "invoke": "roundrobin"}
			}
			join := func(shard int, addr string) *tc {
				c := e.connectFrom(shard, proto.JSON, addr)
				c.hello("realm1", allFeatures, nil)
				c.id = c.expect(proto.CodeWelcome).ID
				return c
			}
			owed := func(c *tc) int64 {
				e.sync()
				b.mu.Lock()
				defer b.mu.Unlock()
				return b.by["address "+clientKey(c.peer.remote)]
			}
			maker, joiner := join(0, "192.0.2.1:1000"), join(1, "192.0.2.2:1000")
			tail := strings.Repeat(".x", 16) + "."
			uris := func(p string, n int) []string {
				var l []string
				for i := 0; i < n; i++ {
					l = append(l, p+strconv.Itoa(i)+tail)
				}
				return l
			}
			cost := hold(uris("m", 1)[0]) + wildcardIndexCost(proto.MatchWildcard, uris("m", 1)[0])
			n := int(budget / 4 * 9 / 10 / cost) // 90 % of the maker's share
			made := maker.requestMany(code, uris("m", n), opt)
			mustAll(t, made, ok)
			mustAll(t, joiner.requestMany(code, uris("m", n), opt), ok)
			for _, m := range made {
				req := maker.nextReq()
				maker.send(&proto.Message{Type: undo, Request: req, ID: m.ID})
				maker.expect(undone)
			}
			t.Logf("%d patterns of %d bytes each (%d its index) made, joined, left by their maker: the maker owes %d, the joiner %d",
				n, cost, cost-hold(uris("m", 1)[0]), owed(maker), owed(joiner))
			if got := owed(maker); got != 0 {
				t.Fatalf("the maker holds none of its %d patterns and is counted %d bytes for them, want 0", n, got)
			}
			var want int64
			for _, u := range uris("m", n) {
				want += hold(u) + wildcardIndexCost(proto.MatchWildcard, u)
			}
			if got := owed(joiner); got != want {
				t.Fatalf("the joiner holds %d patterns and is counted %d bytes, want %d (holds and indexes)", n, got, want)
			}
			// The maker's share is its own again.
			mustAll(t, maker.requestMany(code, uris("again", n), opt), ok)
			// The last holder's leave gives it all back.
			joiner.goodbye()
			if got := owed(joiner); got != 0 {
				t.Fatalf("the joiner left and is counted %d bytes, want 0", got)
			}
			maker.goodbye()
			e.sync()
			if b.total != 0 {
				t.Fatalf("%d bytes counted once everyone left", b.total)
			}
		})
	}
}
