package route

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// Each owner's walk (Realm.subWalks, regWalks) must hold exactly the
// patterns of walkShareFrom components or more that its sessions made
// and that are still in the realm's table, whatever order SUBSCRIBEs
// (REGISTERs), joins, UNSUBSCRIBEs (UNREGISTERs) and leaves come in: a
// copy that kept a pattern gone refused its owner for good, one that
// kept an owner held its memory. Random operations from four addresses
// of two sessions each; after every batch the copies are compared with
// the walked patterns counted afresh, and each copy's walks with ones
// built afresh from those patterns.
func TestWildcardOwnerWalksFollowTheTable(t *testing.T) {
	pool := append(lockOutShape()[:6], "com.x..status.a.b.c.d.e.f.g.h.i", "com.x..status.a.b.c.d.e.f.g.h",
		"a..b.c.d.e.f.g.h.i.j.k", "short..x", "z.y..w")
	for _, kind := range []string{"subscribe", "register"} {
		t.Run(kind, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(57, 14))
			e := newEnv(t, 2, nil)
			code, ok, undo, undone := proto.CodeSubscribe, proto.CodeSubscribed, proto.CodeUnsubscribe, proto.CodeUnsubscribed
			opt := wildcardOpt
			if kind == "register" {
				code, ok, undo, undone = proto.CodeRegister, proto.CodeRegistered, proto.CodeUnregister, proto.CodeUnregistered
				opt = map[string]any{"match": "wildcard", "invoke": "roundrobin"}
			}
			type sess struct {
				c    *tc
				addr string
				held map[uint64]bool
			}
			join := func(i int) *sess {
				addr := "192.0.2." + strconv.Itoa(1+i/2) + ":" + strconv.Itoa(1000+i)
				c := e.connectFrom(i%2, proto.JSON, addr)
				c.hello("realm1", allFeatures, nil)
				c.id = c.expect(proto.CodeWelcome).ID
				return &sess{c: c, addr: addr, held: map[uint64]bool{}}
			}
			ss := make([]*sess, 8)
			for i := range ss {
				ss[i] = join(i)
			}
			rm := e.r.Realm("realm1")
			check := func(step int) {
				e.sync()
				rm.mu.RLock()
				defer rm.mu.RUnlock()
				want := map[string][]string{}
				shares := rm.subWalks
				// Every wildcard pattern counts to its walkBy
				// (wildCounts), whatever its length.
				counts, total := map[string]int{}, 0
				if kind == "subscribe" {
					for _, s := range rm.subByID {
						if s.match == proto.MatchWildcard {
							counts[s.walkBy]++
						}
						if s.match == proto.MatchWildcard && components(s.uri) >= walkShareFrom {
							if !s.walked {
								t.Fatalf("step %d: %q is in the table and in no owner's walk", step, s.uri)
							}
							want[s.walkBy] = append(want[s.walkBy], s.uri)
						}
					}
				} else {
					shares = rm.regWalks
					for _, r := range rm.regByID {
						if r.match == proto.MatchWildcard && r.list().len() > 0 {
							counts[r.walkBy]++
						}
						if r.match == proto.MatchWildcard && components(r.uri) >= walkShareFrom && r.list().len() > 0 {
							if !r.walked {
								t.Fatalf("step %d: %q has callees and is in no owner's walk", step, r.uri)
							}
							want[r.walkBy] = append(want[r.walkBy], r.uri)
						}
					}
				}
				byOwner, realmN := rm.wildSubsBy, rm.wildSubs
				if kind == "register" {
					byOwner, realmN = rm.wildRegsBy, rm.wildRegs
				}
				for o, n := range counts {
					total += n
					if byOwner[o] != n {
						t.Fatalf("step %d: owner %q counted for %d wildcard patterns, it made %d in the table", step, o, byOwner[o], n)
					}
				}
				if len(byOwner) != len(counts) || realmN != total {
					t.Fatalf("step %d: %d owners counted (%v), %d have patterns; the realm counts %d, the table holds %d", step, len(byOwner), byOwner, len(counts), realmN, total)
				}
				if len(shares) != len(want) {
					t.Fatalf("step %d: %d owners' walks kept, %d owners have walked patterns", step, len(shares), len(want))
				}
				for o, uris := range want {
					got := shares[o]
					if got == nil || got.n != len(uris) {
						held := 0
						if got != nil {
							held = got.n
						}
						t.Fatalf("step %d: owner %q's walk holds %d patterns, it has %d walked", step, o, held, len(uris))
					}
					fresh := newTable[struct{}]()
					for _, u := range uris {
						fresh.put(proto.MatchWildcard, u, struct{}{})
					}
					for k, n := range fresh.wild {
						if g := got.wild[k]; g == nil || g.walk != n.walk {
							t.Fatalf("step %d: owner %q's walk of %d components differs from one built afresh (%d)", step, o, k, n.walk)
						}
					}
				}
			}
			for step := 0; step < 1200; step++ {
				i := rng.IntN(len(ss))
				s := ss[i]
				switch r := rng.IntN(10); {
				case r < 6:
					m := s.c.requestMany(code, []string{pool[rng.IntN(len(pool))]}, opt)[0]
					if m.Type == ok {
						s.held[m.ID] = true
					}
				case r < 9 && len(s.held) > 0:
					for id := range s.held {
						s.c.send(&proto.Message{Type: undo, Request: s.c.nextReq(), ID: id})
						s.c.expect(undone)
						delete(s.held, id)
						break
					}
				case r == 9:
					s.c.goodbye()
					ss[i] = join(i)
				}
				if step%50 == 49 {
					check(step)
				}
			}
			for _, s := range ss {
				s.c.goodbye()
			}
			check(-1)
			rm.mu.RLock()
			n := len(rm.subWalks) + len(rm.regWalks) + len(rm.wildSubsBy) + len(rm.wildRegsBy)
			rm.mu.RUnlock()
			if n != 0 {
				t.Fatalf("every session gone, %d owners' walks and counts kept", n)
			}
		})
	}
}
