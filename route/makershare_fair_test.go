package route

import (
	"strconv"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A pattern's index moving to a joiner when its maker leaves it
// (moveMaker) must not let an owner hold more than a charge would let it:
// a quarter of the budget and no more than it leaves free, so that k
// owners taking all they may hold at most k/(k+1) of it (README). Three
// colluding addresses: two make patterns up to their quarter, the third
// joins them and makes its own, the two leave theirs and make more.
func TestPatternMakerMoveKeepsShares(t *testing.T) {
	for _, kind := range []string{"subscribe", "register"} {
		t.Run(kind, func(t *testing.T) {
			const budget = 1 << 20
			e := newEnv(t, 2, func(c *Config) { c.MaxSubscriptionBytes, c.MaxRegistrationBytes = budget, budget })
			code, ok, undo, undone := proto.CodeSubscribe, proto.CodeSubscribed, proto.CodeUnsubscribe, proto.CodeUnsubscribed
			b, opt := &e.r.subBytes, wildcardOpt
			if kind == "register" {
				code, ok, undo, undone = proto.CodeRegister, proto.CodeRegistered, proto.CodeUnregister, proto.CodeUnregistered
				b, opt = &e.r.regBytes, map[string]any{"match": "wildcard", "invoke": "roundrobin"}
			}
			join := func(addr string) *tc {
				c := e.connectFrom(0, proto.JSON, addr)
				c.hello("realm1", allFeatures, nil)
				c.id = c.expect(proto.CodeWelcome).ID
				return c
			}
			tail := strings.Repeat(".x", 16) + "."
			n := 0
			// fill makes patterns until c is refused, returning the made ones.
			fill := func(c *tc, p string) []*proto.Message {
				var made []*proto.Message
				for {
					n++
					m := c.requestMany(code, []string{p + strconv.Itoa(n) + tail}, opt)[0]
					if m.Type != ok {
						return made
					}
					made = append(made, m)
				}
			}
			a, bb, c := join("192.0.2.1:1000"), join("192.0.2.2:1000"), join("192.0.2.3:1000")
			madeA, madeB := fill(a, "a"), fill(bb, "b")
			var all []string
			for i := 1; i <= n; i++ {
				all = append(all, "a"+strconv.Itoa(i)+tail, "b"+strconv.Itoa(i)+tail)
			}
			rm := e.r.Realm("realm1")
			for _, u := range all {
				rm.mu.RLock()
				_, hadSub := rm.subs.get(proto.MatchWildcard, u)
				_, hadReg := rm.regs.get(proto.MatchWildcard, u)
				rm.mu.RUnlock()
				if hadSub || hadReg {
					mustAll(t, c.requestMany(code, []string{u}, opt), ok) // a join
				}
			}
			fill(c, "c")
			for _, l := range []struct {
				c    *tc
				made []*proto.Message
			}{{a, madeA}, {bb, madeB}} {
				for _, m := range l.made {
					l.c.send(&proto.Message{Type: undo, Request: l.c.nextReq(), ID: m.ID})
					l.c.expect(undone)
				}
			}
			fill(a, "a2-")
			fill(bb, "b2-")
			e.sync()
			b.mu.Lock()
			total, by := b.total, map[string]int64{}
			for k, v := range b.by {
				by[k] = v
			}
			b.mu.Unlock()
			t.Logf("three owners hold %d of %d bytes: %v", total, budget, by)
			for k, v := range by {
				if v > budget/4 {
					t.Errorf("%s is counted %d bytes, past its quarter (%d)", k, v, budget/4)
				}
			}
			if total > budget*3/4 {
				t.Errorf("three owners hold %d bytes, past 3/4 of %d (%d): a newcomer may hold no more than %d", total, budget, budget*3/4, (budget-total)/2)
			}
		})
	}
}
