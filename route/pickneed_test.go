package route

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A progressive call invocation, or a call in payload passthru mode, to a
// shared registration goes to a callee that announced the feature
// (pickCallee). When the policy's pick had not, the pick walked the list
// from it, one callee at a time, to the next that had: all of them when
// none had. A CALL so refused at once is bound by no calls_in_flight: on
// a registration of 10,000 callees without the feature each cost the
// caller's event loop 0.54 ms, 35 ms at 100,000 (measured without -race).
// The pick now reads the counts the list keeps, by chunk: it looks into
// no chunk without such a callee.
//
// The test tells a walk by what it sees, as
// TestCalleeListProgSpanSkipsChunksWithout does: once the list is built, a
// callee in the middle is made to announce the features (a session's
// features never change in the router), which a walk finds and a look at
// the chunks' counts does not.
func TestPickCalleeNeedSkipsChunksWithout(t *testing.T) {
	const n = 64 * calleesPerChunk
	for _, counted := range []bool{true, false} {
		l := noCallees
		var mid *Session
		for i := range n {
			s := &Session{id: uint64(i + 1)}
			if i == 0 && counted {
				s.feat = fCalleeProgInv | fCalleePPT
			}
			if i == n/2 {
				mid = s
			}
			l = l.with(callee{s: s, at: int64(1000 + i), seq: uint64(i + 1)})
		}
		mid.feat = fCalleeProgInv | fCalleePPT
		for _, need := range []calleeNeed{needProg, needPPT, needProg | needPPT} {
			for _, inv := range []proto.Invoke{proto.InvokeRoundRobin, proto.InvokeRandom, proto.InvokeFirst, proto.InvokeLast} {
				t.Run(fmt.Sprintf("capable=%v/need=%d/%s", counted, need, inv), func(t *testing.T) {
					reg := &registration{invoke: inv}
					reg.callees.Store(l)
					reg.rr.Store(n/2 - 100) // roundrobin's turn just before mid
					sh := &Shard{rng: seedRand()}
					for k := range 16 {
						c, ok := sh.pickCallee(reg, need)
						if !ok {
							t.Fatal("no pick")
						}
						if c.s == mid {
							t.Fatalf("pick %d took the callee in the middle: it looked at the callees of chunks without one that takes the call (a walk of the list, O(callees) per CALL)", k)
						}
						if counted && c.s.id != 1 {
							t.Fatalf("pick %d took callee %d, want 1, the only one counted as taking the call", k, c.s.id)
						}
						if inv == proto.InvokeRandom && !counted {
							break // the policy's pick: mid once in n
						}
					}
				})
			}
		}
	}
}

// A roundrobin registration whose callees did not all announce
// progressive_call_invocations (payload_passthru_mode) takes turns among
// those that did for the calls that need it. Before, a pick falling on a
// callee without the feature went to the next one with it, so that the
// callee after a run of callees without it took every pick that fell in
// the run: two capable callees among ten, A then B first, took 18 and 2
// of 20 calls (the mesh's pick already took turns among them).
func TestPickCalleeNeedTakesTurns(t *testing.T) {
	plainRoles := map[string]any{"callee": map[string]any{"features": map[string]any{"shared_registration": true}}}
	e := newEnv(t, 2, nil)
	able := []*tc{e.joinWith(proto.JSON, pptFeatures()), e.joinWith(proto.JSON, pptFeatures())}
	for _, c := range able {
		c.register("com.upload", map[string]any{"invoke": "roundrobin"})
	}
	var plain []*tc
	for range 8 {
		c := e.joinWith(proto.JSON, plainRoles)
		c.register("com.upload", map[string]any{"invoke": "roundrobin"})
		plain = append(plain, c)
	}
	caller := e.joinWith(proto.MsgPack, pptFeatures())
	got := make([]int, len(able))
	const calls = 20
	for i := range calls {
		req := caller.nextReq()
		if i%2 == 0 {
			caller.callChunk(req, "com.upload", true, i)
			caller.callChunk(req, "com.upload", false, i)
		} else {
			caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(map[string]any{"ppt_scheme": "x_custom", "ppt_serializer": "native"}), URI: []byte("com.upload"), Args: raw(t, proto.MsgPack, []any{[]byte{1}})})
		}
		e.sync()
		took := -1
		for j, c := range able {
			select {
			case inv := <-c.peer.in:
				if took >= 0 {
					t.Fatalf("call %d reached two callees", i)
				}
				took = j
				if i%2 == 0 {
					if m := c.expect(proto.CodeInvocation); m.Request != inv.Request {
						t.Fatalf("chunk for %d, want %d", m.Request, inv.Request)
					}
				}
				c.yield(inv.Request, nil, []any{"ok"})
			case <-time.After(time.Millisecond):
			}
		}
		if took < 0 {
			t.Fatalf("call %d reached neither callee that takes it: %s", i, describe(caller.recv()))
		}
		got[took]++
		if m := caller.expect(proto.CodeResult); m.Request != req {
			t.Fatalf("RESULT for %d, want %d", m.Request, req)
		}
	}
	for _, c := range plain {
		c.quiet()
	}
	if got[0] != calls/2 || got[1] != calls/2 {
		t.Fatalf("roundrobin gave the two callees that take the calls %d and %d of %d calls, want %d each", got[0], got[1], calls, calls/2)
	}
}

// A call that needs a callee feature (a progressive call invocation, a
// call in payload passthru mode) rerouted after a callee that has it
// answered wamp.error.unavailable goes to another callee that has it. The
// reroute picked among every untried callee and skipped those without the
// feature one try each (of maxCallTries, 17): on a roundrobin registration
// of two callees with the feature and 42 without (first and last too:
// the capable ones near either end), the call ended
// no_available_callee after 17 tries, the second capable callee never
// offered it.
func TestRerouteNeedSkipsCalleesWithoutFeature(t *testing.T) {
	plainRoles := map[string]any{"callee": map[string]any{"features": map[string]any{"shared_registration": true}}}
	for _, policy := range []string{"roundrobin", "random", "first", "last"} {
		for _, shards := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/shards=%d", policy, shards), func(t *testing.T) {
				e := newEnv(t, shards, nil)
				var able []*tc
				var plain []*tc
				for i := range 44 {
					var c *tc
					if i == 3 || i == 40 {
						c = e.joinWith(proto.JSON, pptFeatures())
						able = append(able, c)
					} else {
						c = e.joinWith(proto.JSON, plainRoles)
						plain = append(plain, c)
					}
					c.register("com.upload", map[string]any{"invoke": policy})
				}
				caller := e.joinWith(proto.MsgPack, pptFeatures())
				for i := range 4 {
					req := caller.nextReq()
					if i%2 == 0 {
						caller.callChunk(req, "com.upload", true, i)
					} else {
						caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(map[string]any{"ppt_scheme": "x_custom", "ppt_serializer": "native"}), URI: []byte("com.upload"), Args: raw(t, proto.MsgPack, []any{[]byte{1}})})
					}
					e.sync()
					// The callee that has it answers unavailable; the other
					// must get it.
					var first, second *tc
					for _, c := range able {
						select {
						case inv := <-c.peer.in:
							first = c
							c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv.Request, Dict: c.opts(nil), URI: []byte(proto.URIUnavailable)})
						default:
						}
						if first != nil {
							break
						}
					}
					if first == nil {
						t.Fatalf("call %d reached no callee that takes it: %s", i, describe(caller.recv()))
					}
					e.sync()
					for _, c := range able {
						if c == first {
							continue
						}
						select {
						case inv := <-c.peer.in:
							second = c
							c.yield(inv.Request, nil, []any{"ok"})
						default:
						}
					}
					if second == nil {
						t.Fatalf("call %d, rerouted, did not reach the other callee that takes it: caller got %s", i, describe(caller.recv()))
					}
					if m := caller.expect(proto.CodeResult); m.Request != req {
						t.Fatalf("RESULT for %d, want %d", m.Request, req)
					}
					if i%2 == 0 {
						caller.callChunk(req, "com.upload", false, i) // the stream's end, dropped: the call has ended
					}
				}
				e.sync()
				for _, c := range plain {
					if len(c.peer.in) > 0 {
						t.Fatalf("a callee without the features got %s", describe(c.recv()))
					}
				}
			})
		}
	}
}
