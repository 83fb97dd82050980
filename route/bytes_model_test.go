package route

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// checkSubBytes asserts that Config.MaxSubscriptionBytes' counter is what
// the attached sessions' subscriptions cost, and each owner's its
// sessions': a hold (subHoldCost) per session and subscription, and a
// wildcard pattern's index once, to the session's owner whose SUBSCRIBE
// made it (subscription.maker) while that owner holds it, then to another
// owner holding it (moveMaker).
func checkSubBytes(t *testing.T, e *env, when string) {
	t.Helper()
	e.sync()
	var total int64
	by := map[string]int64{}
	wild := map[*subscription]map[string]int{} // its holders by owner
	for i, x := range e.execs {
		sh := e.r.Shard(i)
		x.do(func() {
			for ss := range sh.attached {
				for _, ref := range ss.subs {
					total += subHoldCost(ref.sub.uri)
					if ss.subOwner != "" {
						by[ss.subOwner] += subHoldCost(ref.sub.uri)
					}
					if ref.sub.match == proto.MatchWildcard {
						if wild[ref.sub] == nil {
							wild[ref.sub] = map[string]int{}
						}
						wild[ref.sub][ss.subOwner]++
					}
				}
			}
		})
	}
	for sub, holders := range wild {
		if holders[sub.maker] == 0 || holders[sub.maker] != sub.makerHolds {
			t.Errorf("%s: %q's index is counted to %q, holding it %d times (%d counted), its holders %v", when, sub.uri, sub.maker, holders[sub.maker], sub.makerHolds, holders)
		}
		n := wildcardIndexCost(sub.match, sub.uri)
		total += n
		if sub.maker != "" {
			by[sub.maker] += n
		}
	}
	b := &e.r.subBytes
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.total != total {
		t.Errorf("%s: the router counts %d subscription bytes, its sessions hold %d", when, b.total, total)
	}
	for k, n := range b.by {
		if by[k] != n {
			t.Errorf("%s: owner %q counted %d subscription bytes, its sessions hold %d", when, k, n, by[k])
		}
		delete(by, k)
	}
	for k, n := range by {
		t.Errorf("%s: owner %q holds %d subscription bytes the router does not count", when, k, n)
	}
}

// TestSubscriptionAndRegistrationBytesRandomModel drives seeded random
// SUBSCRIBEs and REGISTERs of shared wildcard patterns (and prefix,
// exact, single ones) by sessions of four client addresses on three
// loops, with UNSUBSCRIBE, UNREGISTER, remove_subscriber, remove_callee,
// GOODBYE, a dropped connection and reconnections, so that a pattern's
// maker leaves before, after and between its joiners, on the same loop
// and on others; after each step the counters are what the sessions hold
// (a hold each, a wildcard index once, to its maker: checkSubBytes,
// checkRegBytes), and 0, with no owner left, once all have left.
func TestSubscriptionAndRegistrationBytesRandomModel(t *testing.T) {
	type pat struct{ uri, match, invoke string }
	subPats := []pat{{"a..c", "wildcard", ""}, {"a.b.", "wildcard", ""}, {".b.c", "wildcard", ""}, {"a..", "wildcard", ""}, {"a.", "prefix", ""}, {"a.b.c", "exact", ""}}
	regPats := []pat{{"p..c", "wildcard", "roundrobin"}, {"p.b.", "wildcard", "first"}, {".q.c", "wildcard", "last"}, {"p..d", "wildcard", "single"}, {"p.", "prefix", "random"}, {"p.b.c", "exact", "roundrobin"}}
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			all, err := NewRBAC([]Role{{Name: "app", Permissions: []Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Register: true, Publish: true, Subscribe: true}}}})
			if err != nil {
				t.Fatal(err)
			}
			// What a reload toggles to: the patterns starting with an
			// empty component (".b.c", ".q.c") are no longer granted.
			some, err := NewRBAC([]Role{{Name: "app", Permissions: []Permission{{URI: "a.", Match: proto.MatchPrefix, Call: true, Register: true, Publish: true, Subscribe: true}, {URI: "p.", Match: proto.MatchPrefix, Call: true, Register: true, Publish: true, Subscribe: true}, {URI: "wamp.", Match: proto.MatchPrefix, Call: true}}}})
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, 3, func(c *Config) {
				c.MaxSubscriptionBytes = 1 << 20
				c.MaxRegistrationBytes = 1 << 20
				c.Realms = append(c.Realms, RealmConfig{Name: "secure", Anonymous: true, AnonymousRole: "app", Authorizer: all})
			})
			restricted := false
			reloads, revoked := 0, 0
			admin := e.connectFrom(0, proto.JSON, "192.0.2.9:1")
			admin.hello("secure", allFeatures, nil)
			admin.id = admin.expect(proto.CodeWelcome).ID
			const ns = 9
			cs := make([]*tc, ns)
			port := 1000
			join := func(i int) {
				port++
				c := e.connectFrom(i%3, proto.MsgPack, fmt.Sprintf("198.51.100.%d:%d", i%4, port))
				c.hello("secure", revocableFeatures, nil)
				c.id = c.expect(proto.CodeWelcome).ID
				cs[i] = c
			}
			for i := range cs {
				join(i)
			}
			// held: the session's subscription and registration ids.
			subs := make([]map[uint64]bool, ns)
			regs := make([]map[uint64]bool, ns)
			for i := range subs {
				subs[i], regs[i] = map[uint64]bool{}, map[uint64]bool{}
			}
			pick := func(m map[uint64]bool) uint64 {
				n := rng.IntN(len(m))
				for id := range m {
					if n == 0 {
						return id
					}
					n--
				}
				return 0
			}
			for step := 0; step < 300; step++ {
				i := rng.IntN(ns)
				c := cs[i]
				var what string
				switch op := rng.IntN(12); {
				case op < 3:
					p := subPats[rng.IntN(len(subPats))]
					req := c.nextReq()
					c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: c.opts(map[string]any{"match": p.match}), URI: []byte(p.uri)})
					m := c.recv()
					switch {
					case m.Type == proto.CodeSubscribed:
						subs[i][m.ID] = true
					case m.Type == proto.CodeError && restricted && string(m.URI) == proto.URINotAuthorized:
					default:
						t.Fatalf("step %d: SUBSCRIBE %s: %v %s", step, p.uri, m.Type, describe(m))
					}
					what = "SUBSCRIBE " + p.uri
				case op < 6:
					p := regPats[rng.IntN(len(regPats))]
					o := map[string]any{"match": p.match}
					if p.invoke != "single" {
						o["invoke"] = p.invoke
					}
					req := c.nextReq()
					c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(o), URI: []byte(p.uri)})
					m := c.recv()
					switch m.Type {
					case proto.CodeRegistered:
						regs[i][m.ID] = true
					case proto.CodeError: // already registered (single, or by this session), or not granted
					default:
						t.Fatalf("step %d: REGISTER %s: %v %s", step, p.uri, m.Type, describe(m))
					}
					what = "REGISTER " + p.uri
				case op < 7 && len(subs[i]) > 0:
					id := pick(subs[i])
					req := c.nextReq()
					c.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: req, ID: id})
					c.expect(proto.CodeUnsubscribed)
					delete(subs[i], id)
					what = "UNSUBSCRIBE"
				case op < 8 && len(regs[i]) > 0:
					id := pick(regs[i])
					req := c.nextReq()
					c.send(&proto.Message{Type: proto.CodeUnregister, Request: req, ID: id})
					c.expect(proto.CodeUnregistered)
					delete(regs[i], id)
					what = "UNREGISTER"
				case op < 9 && len(subs[i]) > 0:
					id := pick(subs[i])
					admin.callMeta("wamp.subscription.remove_subscriber", []any{id, c.id}, nil)
					c.expectRevoked(proto.CodeUnsubscribed, "subscription", id, "")
					delete(subs[i], id)
					what = "remove_subscriber"
				case op < 10 && len(regs[i]) > 0:
					id := pick(regs[i])
					admin.callMeta("wamp.registration.remove_callee", []any{id, c.id}, nil)
					c.expectRevoked(proto.CodeUnregistered, "registration", id, "")
					delete(regs[i], id)
					what = "remove_callee"
				case op < 11 && rng.IntN(4) == 0:
					// A reload takes (or gives back) the grant of the
					// patterns starting with an empty component: their
					// subscribers and callees are revoked, makers and
					// joiners together.
					restricted = !restricted
					rc := *e.r.Realm("secure").conf()
					rc.Authorizer = all
					if restricted {
						rc.Authorizer = some
					}
					keep := []RealmConfig{*e.r.Realm("realm1").conf(), *e.r.Realm("realm2").conf(), *e.r.Realm("trusted").conf()}
					if err := e.r.Reload(append(keep, rc)); err != nil {
						t.Fatal(err)
					}
					e.sync()
					e.sync()
					reloads++
					for k, x := range cs {
						for len(x.peer.in) > 0 {
							m := <-x.peer.in
							d := dictOf(t, m)
							revoked++
							switch {
							case m.Type == proto.CodeUnsubscribed && m.Request == 0:
								delete(subs[k], uint64(d["subscription"].(int64)))
							case m.Type == proto.CodeUnregistered && m.Request == 0:
								delete(regs[k], uint64(d["registration"].(int64)))
							default:
								t.Fatalf("step %d: after a reload, session %d got %v %s", step, k, m.Type, describe(m))
							}
						}
					}
					what = fmt.Sprintf("reload (restricted %v)", restricted)
				case op < 11:
					if rng.IntN(2) == 0 {
						c.goodbye()
						what = "GOODBYE"
					} else {
						c.drop()
						what = "dropped"
					}
					clear(subs[i])
					clear(regs[i])
					join(i)
				default:
					continue
				}
				when := fmt.Sprintf("step %d (session %d: %s)", step, i, what)
				checkSubBytes(t, e, when)
				checkRegBytes(t, e, when)
				if t.Failed() {
					t.FailNow()
				}
			}
			t.Logf("%d reloads revoked %d subscriptions and registrations", reloads, revoked)
			for _, c := range cs {
				c.goodbye()
			}
			admin.goodbye()
			checkSubBytes(t, e, "all left")
			checkRegBytes(t, e, "all left")
			st := e.r.Stats()
			if st.SubscriptionBytes != 0 || st.RegistrationBytes != 0 {
				t.Fatalf("all left: %d subscription bytes and %d registration bytes still counted", st.SubscriptionBytes, st.RegistrationBytes)
			}
		})
	}
}
