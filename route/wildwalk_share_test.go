package route

import (
	"strconv"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// lockOutShape returns the 1,024 wildcard patterns of 13 components that
// start with a wildcard, then 10 components each "a" or a wildcard, then
// "b.z": alone they take the index's walk of 13 components to 4,095, so
// that any literal first component (its chain's 13 steps beside them)
// passes maxWildcardWalk.
func lockOutShape() []string {
	l := make([]string, 1024)
	for i := range l {
		comps := make([]string, 13)
		for j := 0; j < 10; j++ {
			if i&(1<<j) == 0 {
				comps[1+j] = "a"
			}
		}
		comps[11], comps[12] = "b", "z"
		l[i] = strings.Join(comps, ".")
	}
	return l
}

// One session could shut every other client of the realm out of new
// wildcard patterns of a component count: 1,024 patterns of 13
// components starting with a wildcard (within its own
// wildcard_subscriptions) took the walk to 4,095, after which every new
// 13-component pattern starting with a literal was refused "overlaps too
// many", whoever sent it. An owner (client address or authid, as the
// byte budgets') now adds at most a quarter of maxWildcardWalk to a walk
// (its own patterns' walk), so that the others keep three quarters.
func TestWildcardWalkOneOwnerCannotLockOut(t *testing.T) {
	for _, kind := range []string{"subscribe", "register"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, 2, nil)
			code, ok := proto.CodeSubscribe, proto.CodeSubscribed
			opt := wildcardOpt
			if kind == "register" {
				code, ok = proto.CodeRegister, proto.CodeRegistered
				opt = map[string]any{"match": "wildcard", "invoke": "roundrobin"}
			}
			join := func(shard int, addr string) *tc {
				c := e.connectFrom(shard, proto.JSON, addr)
				c.hello("realm1", allFeatures, nil)
				c.id = c.expect(proto.CodeWelcome).ID
				return c
			}
			attacker := join(0, "192.0.2.1:1000")
			taken, refused := 0, 0
			var first string
			for i, m := range attacker.requestMany(code, lockOutShape(), opt) {
				switch {
				case m.Type == ok:
					taken++
					if first == "" {
						first = lockOutShape()[i]
					}
				case m.Type == proto.CodeError && string(m.URI) == proto.URIUnavailable && strings.Contains(argsOf(m)[0].(string), "this client's"):
					refused++
				default:
					t.Fatalf("attacker's pattern answered %s", describe(m))
				}
			}
			rm := e.r.Realm("realm1")
			tb := rm.subs
			if kind == "register" {
				tb = nil
			}
			walkOf := func() int32 {
				rm.mu.RLock()
				defer rm.mu.RUnlock()
				if tb == nil {
					checkWalks(t, rm.regs)
					return rm.regs.wild[13].walk
				}
				checkWalks(t, tb)
				return tb.wild[13].walk
			}
			walk := walkOf()
			t.Logf("one session of one address: %d patterns taken, %d refused; the walk of 13 components is %d", taken, refused, walk)
			// Another client's patterns starting with a literal.
			other := join(1, "192.0.2.2:1000")
			for _, u := range []string{"com.x..status.a.b.c.d.e.f.g.h.i", "com.y.z.status.a.b.c.d.e.f.g.h."} {
				if m := other.requestMany(code, []string{u}, opt)[0]; m.Type != ok {
					t.Fatalf("another address's %s of %q answered %s", kind, u, describe(m))
				}
			}
			// Joining the attacker's pattern is always taken.
			mustAll(t, other.requestMany(code, []string{first}, opt), ok)
			// A fleet behind one address, each device with its own literal.
			fleet := 0
			for s := 0; s < 4; s++ {
				dev := join(s%2, "192.0.2.3:"+strconv.Itoa(2000+s))
				var l []string
				for i := 0; i < 250; i++ {
					l = append(l, "com.x.dev"+strconv.Itoa(s*250+i)+"..status.a.b.c.d.e.f.g.h")
				}
				for _, m := range dev.requestMany(code, l, opt) {
					if m.Type != ok {
						t.Fatalf("a fleet device's %s answered %s after %d", kind, describe(m), fleet)
					}
					fleet++
				}
			}
			if walk = walkOf(); walk > maxWildcardWalk {
				t.Fatalf("the walk is %d, past %d", walk, maxWildcardWalk)
			}
			t.Logf("then another address's patterns, a join and a fleet's %d patterns were taken; the walk is %d", fleet, walk)
			// Their owners' walks go with their patterns.
			attacker.goodbye()
			other.goodbye()
			e.sync()
			rm.mu.RLock()
			owners, mine := len(rm.subWalks), rm.subWalks["address "+clientKey("192.0.2.1:1000")]
			if kind == "register" {
				owners, mine = len(rm.regWalks), rm.regWalks["address "+clientKey("192.0.2.1:1000")]
			}
			rm.mu.RUnlock()
			if owners != 1 || mine != nil {
				t.Fatalf("the attacker's and the other address's patterns gone, %d owners' walks are kept (the attacker's: %v)", owners, mine != nil)
			}
		})
	}
}
