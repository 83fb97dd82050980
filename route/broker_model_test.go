package route

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestBrokerModelRandomOps runs seeded random SUBSCRIBE (exact, prefix,
// wildcard, with get_retained or not), UNSUBSCRIBE, PUBLISH (exclude_me,
// eligible, exclude, retain, acknowledge), and leaving with a testament
// (its publish_options too), by six sessions on three shards, and checks
// every session's messages against a model after each: one EVENT per
// subscription the session holds that matches, none after UNSUBSCRIBED,
// the subscription ids stable while held, the newest retained event each
// subscriber may receive on get_retained (a topic's chain of events with
// lists), and nothing left in the tables or the subscription budget once
// all have left.
func TestBrokerModelRandomOps(t *testing.T) {
	type pat struct {
		uri   string
		match string
	}
	pats := []pat{{"a.b.c", "exact"}, {"a.b.d", "exact"}, {"a.x.c", "exact"}, {"a.", "prefix"}, {"a.b", "prefix"}, {"a..c", "wildcard"}, {"a.b.", "wildcard"}, {"a", "prefix"}}
	topics := []string{"a.b.c", "a.b.d", "a.x.c", "a.bb.c"}
	matchOf := func(p pat, topic string) bool {
		switch p.match {
		case "exact":
			return p.uri == topic
		case "prefix":
			return len(topic) >= len(p.uri) && topic[:len(p.uri)] == p.uri
		}
		return patternMatches(proto.MatchWildcard, p.uri, topic)
	}
	for seed := uint64(1); seed <= 12; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		e := newEnv(t, 3, nil)
		const ns = 6
		cs := make([]*tc, ns)
		held := make([]map[pat]uint64, ns)
		type rev struct {
			id         uint64
			elig, excl map[uint64]bool // nil: none
		}
		retained := map[string][]rev{}
		for i := range cs {
			cs[i] = e.join(proto.JSON)
			held[i] = map[pat]uint64{}
		}
		drain := func(c *tc) []*proto.Message {
			var out []*proto.Message
			for {
				select {
				case m := <-c.peer.in:
					out = append(out, m)
				default:
					return out
				}
			}
		}
		for step := 0; step < 400; step++ {
			i := rng.IntN(ns)
			c := cs[i]
			switch op := rng.IntN(10); {
			case op < 3:
				p := pats[rng.IntN(len(pats))]
				gr := rng.IntN(2) == 0
				id := c.subscribe(p.uri, map[string]any{"match": p.match, "get_retained": gr})
				e.sync()
				want := map[uint64]bool{}
				if gr {
					for tp, chain := range retained {
						if !matchOf(p, tp) {
							continue
						}
						for _, r := range chain {
							if (r.elig == nil || r.elig[c.id]) && !r.excl[c.id] {
								want[r.id] = true
								break
							}
						}
					}
				}
				got := map[uint64]bool{}
				for _, m := range drain(c) {
					if m.Type != proto.CodeEvent || m.ID != id || !m.Opt.Bool(proto.KeyRetained, false) {
						t.Fatalf("seed %d step %d: after SUBSCRIBE got %v %s", seed, step, m.Type, describe(m))
					}
					got[uint64(argsOf(m)[0].(int64))] = true
				}
				if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(want)) {
					t.Fatalf("seed %d step %d: get_retained %v got %v want %v", seed, step, p, sortedKeys(got), sortedKeys(want))
				}
				if old, ok := held[i][p]; ok && old != id {
					t.Fatalf("seed %d step %d: resubscribe gave %d, held %d", seed, step, id, old)
				}
				// ids of one session's different patterns differ
				for q, x := range held[i] {
					if q != p && x == id {
						t.Fatalf("seed %d: same id %d for %v and %v", seed, id, q, p)
					}
				}
				held[i][p] = id
			case op < 5:
				if len(held[i]) == 0 {
					continue
				}
				var ks []pat
				for k := range held[i] {
					ks = append(ks, k)
				}
				sort.Slice(ks, func(a, b int) bool { return ks[a].uri+ks[a].match < ks[b].uri+ks[b].match })
				p := ks[rng.IntN(len(ks))]
				req := c.nextReq()
				c.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: req, ID: held[i][p]})
				c.expect(proto.CodeUnsubscribed)
				delete(held[i], p)
			case op < 6:
				// leave and come back, maybe with a testament
				if rng.IntN(2) == 0 {
					topic := topics[rng.IntN(len(topics))]
					po := map[string]any{}
					ret := rng.IntN(2) == 0
					if ret {
						po["retain"] = true
					}
					var elig, excl []uint64
					eligSet, exclSet := map[int]bool{}, map[int]bool{}
					if rng.IntN(3) == 0 {
						elig = []uint64{}
						for j := range cs {
							if rng.IntN(2) == 0 {
								elig = append(elig, cs[j].id)
								eligSet[j] = true
							}
						}
						po["eligible"] = elig
					}
					if rng.IntN(3) == 0 {
						excl = []uint64{}
						for j := range cs {
							if rng.IntN(3) == 0 {
								excl = append(excl, cs[j].id)
								exclSet[j] = true
							}
						}
						po["exclude"] = excl
					}
					c.callMeta("wamp.session.add_testament", []any{topic, []any{step}}, map[string]any{"publish_options": po})
					c.goodbye()
					e.sync()
					if ret {
						r := rev{id: uint64(step)}
						if po["eligible"] != nil {
							r.elig = map[uint64]bool{}
							for _, x := range elig {
								r.elig[x] = true
							}
						}
						if po["exclude"] != nil {
							r.excl = map[uint64]bool{}
							for _, x := range excl {
								r.excl[x] = true
							}
						}
						if r.elig == nil && r.excl == nil {
							retained[topic] = []rev{r}
						} else {
							var keep []rev
							nf := 1
							for _, x := range retained[topic] {
								if x.elig == nil && x.excl == nil {
									keep = append(keep, x)
									break
								}
								if nf < maxRetainedFiltered {
									keep = append(keep, x)
									nf++
								}
							}
							retained[topic] = append([]rev{r}, keep...)
						}
					}
					for j, d := range cs {
						if j == i {
							continue
						}
						want := map[uint64]bool{}
						if (po["eligible"] == nil || eligSet[j]) && !exclSet[j] {
							for p, id := range held[j] {
								if matchOf(p, topic) {
									want[id] = true
								}
							}
						}
						got := map[uint64]bool{}
						for _, m := range drain(d) {
							if m.Type != proto.CodeEvent || argsOf(m)[0] != int64(step) || got[m.ID] {
								t.Fatalf("seed %d step %d: testament: session %d got %v %s", seed, step, j, m.Type, describe(m))
							}
							got[m.ID] = true
						}
						if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(want)) {
							t.Fatalf("seed %d step %d: testament to %s %v: session %d got %v want %v", seed, step, topic, po, j, sortedKeys(got), sortedKeys(want))
						}
					}
				} else {
					c.goodbye()
				}
				nc := e.join(proto.JSON)
				cs[i] = nc
				held[i] = map[pat]uint64{}
			default:
				topic := topics[rng.IntN(len(topics))]
				o := map[string]any{"acknowledge": true}
				ret := rng.IntN(3) == 0
				if ret {
					o["retain"] = true
				}
				exMe := rng.IntN(2) == 0
				o["exclude_me"] = exMe
				var elig, excl []uint64
				eligSet, exclSet := map[int]bool{}, map[int]bool{}
				if rng.IntN(3) == 0 {
					for j := range cs {
						if rng.IntN(2) == 0 {
							elig = append(elig, cs[j].id)
							eligSet[j] = true
						}
					}
					o["eligible"] = elig
				}
				if rng.IntN(3) == 0 {
					for j := range cs {
						if rng.IntN(3) == 0 {
							excl = append(excl, cs[j].id)
							exclSet[j] = true
						}
					}
					o["exclude"] = excl
				}
				c.publish(topic, o, []any{step}, nil)
				e.sync()
				var pre []*proto.Message
				var ack *proto.Message
				for ack == nil {
					m := c.recv()
					if m.Type == proto.CodePublished {
						ack = m
					} else {
						pre = append(pre, m)
					}
				}
				if ret {
					r := rev{id: uint64(step)}
					if o["eligible"] != nil {
						r.elig = map[uint64]bool{}
						for _, x := range elig {
							r.elig[x] = true
						}
					}
					if o["exclude"] != nil {
						r.excl = map[uint64]bool{}
						for _, x := range excl {
							r.excl[x] = true
						}
					}
					if r.elig == nil && r.excl == nil {
						retained[topic] = []rev{r}
					} else {
						var keep []rev
						nf := 1
						for _, x := range retained[topic] {
							if x.elig == nil && x.excl == nil {
								keep = append(keep, x)
								break
							}
							if nf < maxRetainedFiltered {
								keep = append(keep, x)
								nf++
							}
						}
						retained[topic] = append([]rev{r}, keep...)
					}
				}
				for j, d := range cs {
					want := map[uint64]bool{}
					ok := !(exMe && j == i) && (o["eligible"] == nil || eligSet[j]) && !exclSet[j]
					if ok {
						for p, id := range held[j] {
							if matchOf(p, topic) {
								want[id] = true
							}
						}
					}
					got := map[uint64]bool{}
					ms := drain(d)
					if j == i {
						ms = append(pre, ms...)
					}
					for _, m := range ms {
						if m.Type != proto.CodeEvent {
							t.Fatalf("seed %d step %d: session %d got %v %s", seed, step, j, m.Type, describe(m))
						}
						if m.ID2 != ack.ID {
							t.Fatalf("seed %d step %d: session %d got publication %d, want %d", seed, step, j, m.ID2, ack.ID)
						}
						if got[m.ID] {
							t.Fatalf("seed %d step %d: session %d got sub %d twice", seed, step, j, m.ID)
						}
						got[m.ID] = true
					}
					if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(want)) {
						t.Fatalf("seed %d step %d: publish %s %v by %d: session %d got subs %v, want %v (held %v)", seed, step, topic, o, i, j, sortedKeys(got), sortedKeys(want), held[j])
					}
				}
			}
		}
		for _, c := range cs {
			c.goodbye()
		}
		e.sync()
		rm := e.r.Realm("realm1")
		rm.mu.RLock()
		n, nid, w := rm.subs.n, len(rm.subByID), rm.wildSubs
		rm.mu.RUnlock()
		if n != 0 || nid != 0 || w != 0 {
			t.Fatalf("seed %d: after all left: %d subs in the table, %d by id, %d wildcard", seed, n, nid, w)
		}
		e.r.subBytes.mu.Lock()
		tot := e.r.subBytes.total
		e.r.subBytes.mu.Unlock()
		if tot != 0 {
			t.Fatalf("seed %d: %d subscription bytes still counted", seed, tot)
		}
	}
}

func sortedKeys(m map[uint64]bool) []uint64 {
	var l []uint64
	for k := range m {
		l = append(l, k)
	}
	sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
	return l
}
