package route

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// rndPart is a session of TestDealerRandomized, caller and callee at once,
// with what it expects: its calls waiting for their final answer, its
// progressive call invocations still open, its invocations in flight.
type rndPart struct {
	c   *tc
	uid int64
	// caller side
	pending map[uint64]bool
	prog    map[uint64]bool
	open    map[uint64]bool
	metaReq map[uint64]bool
	// callee side
	reg       uint64
	regd      bool
	live      map[uint64][2]int64
	recv      map[uint64]bool
	streaming map[uint64]bool
	ended     map[uint64]bool
	cancel    bool
}

// TestDealerRandomized drives the dealer with seeded random sessions, each
// caller and callee of one shared registration (every policy, one to
// three shards, some callees without call_canceling): calls with and
// without progressive results and timeouts, progressive call invocations,
// CANCELs in the three modes, progressive and final YIELDs, ERRORs
// (unavailable, rerouted, and an application's), UNREGISTER and REGISTER
// again, wamp.registration.remove_callee, sessions that leave (transport
// closed or GOODBYE) mid-call. It checks what a peer sees against a model:
// no INVOCATION twice, none for a call its caller no longer waits for,
// nothing for an invocation that ended, no INTERRUPT to a callee that did
// not announce call_canceling, progressive RESULTs only when asked and
// before the final answer; once every open invocation is answered and
// the timeouts have passed, every call has had exactly one final answer,
// and when all have left no shard counts a call in flight, a call's bytes
// waiting for it or a reroute record.
func TestDealerRandomized(t *testing.T) {
	for seed := uint64(1); seed <= 16; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { dealerRandomized(t, seed) })
	}
}

func dealerRandomized(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	e := newEnv(t, 1+int(seed%3), nil)
	policy := []string{"roundrobin", "first", "last", "random"}[seed%4]
	uids := map[int64]*rndPart{}
	var next int64
	var log []string
	fail := func(f string, a ...any) {
		t.Helper()
		for _, l := range log[max(0, len(log)-60):] {
			t.Log(l)
		}
		t.Fatalf(f, a...)
	}
	mk := func() *rndPart {
		var c *tc
		cancel := true
		if rng.IntN(4) == 0 {
			c = e.connect(proto.MsgPack)
			c.hello("realm1", map[string]any{"caller": map[string]any{"features": map[string]any{"progressive_call_results": true, "progressive_call_invocations": true}}, "callee": map[string]any{"features": map[string]any{"progressive_call_results": true}}}, nil)
			c.id = c.expect(proto.CodeWelcome).ID
			cancel = false
		} else {
			c = e.join(proto.JSON)
		}
		next++
		p := &rndPart{c: c, uid: next, pending: map[uint64]bool{}, prog: map[uint64]bool{}, open: map[uint64]bool{}, metaReq: map[uint64]bool{},
			live: map[uint64][2]int64{}, recv: map[uint64]bool{}, streaming: map[uint64]bool{}, ended: map[uint64]bool{}, cancel: cancel}
		uids[p.uid] = p
		return p
	}
	var parts []*rndPart
	for i := 0; i < 5; i++ {
		parts = append(parts, mk())
	}
	register := func(p *rndPart) {
		log = append(log, fmt.Sprintf("%d REGISTER", p.c.id))
		p.c.send(&proto.Message{Type: proto.CodeRegister, Request: p.c.nextReq(), Dict: p.c.opts(map[string]any{"invoke": policy}), URI: []byte("com.x")})
		p.regd = true
	}
	handle := func(p *rndPart, m *proto.Message) {
		switch m.Type {
		case proto.CodeInvocation:
			a := argsOf(m)
			log = append(log, fmt.Sprintf("%d INVOCATION %d %v progress=%v", p.c.id, m.Request, a, m.Opt.Bool(proto.KeyProgress, false)))
			if _, ok := p.live[m.Request]; ok {
				if !p.streaming[m.Request] {
					fail("%d: second INVOCATION %d", p.c.id, m.Request)
				}
				p.streaming[m.Request] = m.Opt.Bool(proto.KeyProgress, false)
				return
			}
			if p.ended[m.Request] {
				fail("%d: INVOCATION of ended %d", p.c.id, m.Request)
			}
			u, _ := a[0].(int64)
			rq, _ := a[1].(int64)
			if cl := uids[u]; cl != nil && !cl.pending[uint64(rq)] {
				fail("%d: new INVOCATION %d for %d's call %d, not pending", p.c.id, m.Request, cl.c.id, rq)
			}
			p.live[m.Request] = [2]int64{u, rq}
			p.recv[m.Request] = m.Opt.Bool(proto.KeyReceiveProgress, false)
			p.streaming[m.Request] = m.Opt.Bool(proto.KeyProgress, false)
		case proto.CodeInterrupt:
			log = append(log, fmt.Sprintf("%d INTERRUPT %d %s", p.c.id, m.Request, m.Opt.String(proto.KeyMode)))
			if !p.cancel {
				fail("INTERRUPT to a callee without call_canceling")
			}
			if m.Opt.String(proto.KeyMode) == "killnowait" {
				delete(p.live, m.Request)
				p.ended[m.Request] = true
			}
		case proto.CodeRegistered:
			p.reg = m.ID
		case proto.CodeUnregistered:
			if m.Request == 0 {
				p.regd = false
			}
		case proto.CodeResult, proto.CodeError:
			log = append(log, fmt.Sprintf("%d %v %s", p.c.id, m.Type, describe(m)))
			if m.Type == proto.CodeError && m.ReqType != proto.CodeCall {
				if m.ReqType == proto.CodeUnregister {
					return
				}
				fail("%d: ERROR %v %s", p.c.id, m.ReqType, describe(m))
			}
			if p.metaReq[m.Request] {
				delete(p.metaReq, m.Request)
				return
			}
			if !p.pending[m.Request] {
				fail("%d: %v for %d not pending", p.c.id, m.Type, m.Request)
			}
			if m.Type == proto.CodeResult && m.Opt.Bool(proto.KeyProgress, false) {
				if !p.prog[m.Request] {
					fail("progress not asked")
				}
				return
			}
			delete(p.pending, m.Request)
		default:
			fail("%d got %v %s", p.c.id, m.Type, describe(m))
		}
	}
	pump := func() {
		for {
			e.sync()
			got := false
			for _, p := range parts {
				for {
					var m *proto.Message
					select {
					case m = <-p.c.peer.in:
					default:
					}
					if m == nil {
						break
					}
					got = true
					handle(p, m)
				}
			}
			if !got {
				return
			}
		}
	}
	for _, p := range parts[:3] {
		register(p)
	}
	pump()
	callArgs := func(p *rndPart, req uint64) proto.Raw { return raw(t, proto.JSON, []any{p.uid, req}) }
	for step := 0; step < 400; step++ {
		p := parts[rng.IntN(len(parts))]
		switch k := rng.IntN(100); {
		case k < 22:
			o := map[string]any{}
			req := p.c.nextReq()
			if rng.IntN(2) == 0 {
				o["receive_progress"] = true
				p.prog[req] = true
			}
			if rng.IntN(3) == 0 {
				o["timeout"] = 50
			}
			p.pending[req] = true
			log = append(log, fmt.Sprintf("%d CALL %d %v", p.c.id, req, o))
			p.c.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: p.c.opts(o), URI: []byte("com.x"), Args: callArgs(p, req)})
		case k < 30:
			var req uint64
			for r := range p.open {
				req = r
				break
			}
			first := req == 0
			if first {
				req = p.c.nextReq()
				p.pending[req] = true
				p.open[req] = true
			}
			o := map[string]any{}
			if !first && rng.IntN(3) == 0 {
				delete(p.open, req)
			} else {
				o["progress"] = true
			}
			if first && rng.IntN(2) == 0 {
				o["receive_progress"] = true
				p.prog[req] = true
			}
			log = append(log, fmt.Sprintf("%d CALL chunk %d %v", p.c.id, req, o))
			p.c.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: p.c.opts(o), URI: []byte("com.x"), Args: callArgs(p, req)})
		case k < 38:
			for req := range p.pending {
				mode := []string{"skip", "kill", "killnowait"}[rng.IntN(3)]
				log = append(log, fmt.Sprintf("%d CANCEL %d %s", p.c.id, req, mode))
				p.c.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: p.c.opts(map[string]any{"mode": mode})})
				break
			}
		case k < 70:
			var inv uint64
			for i := range p.live {
				inv = i
				break
			}
			if inv == 0 {
				break
			}
			switch a := rng.IntN(10); {
			case a < 3 && p.recv[inv]:
				log = append(log, fmt.Sprintf("%d YIELD progress %d", p.c.id, inv))
				p.c.yield(inv, map[string]any{"progress": true}, []any{"p"})
			case a < 6:
				log = append(log, fmt.Sprintf("%d YIELD %d", p.c.id, inv))
				p.c.yield(inv, nil, []any{"r"})
				delete(p.live, inv)
				p.ended[inv] = true
			case a < 8:
				log = append(log, fmt.Sprintf("%d ERROR unavailable %d", p.c.id, inv))
				p.c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv, Dict: p.c.opts(nil), URI: []byte(proto.URIUnavailable)})
				delete(p.live, inv)
				p.ended[inv] = true
			default:
				log = append(log, fmt.Sprintf("%d ERROR app %d", p.c.id, inv))
				p.c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv, Dict: p.c.opts(nil), URI: []byte("com.err")})
				delete(p.live, inv)
				p.ended[inv] = true
			}
		case k < 76:
			log = append(log, "advance")
			e.advance(30 * time.Millisecond)
		case k < 82:
			if p.regd {
				log = append(log, fmt.Sprintf("%d UNREGISTER", p.c.id))
				p.c.send(&proto.Message{Type: proto.CodeUnregister, Request: p.c.nextReq(), ID: p.reg})
				p.regd = false
			} else {
				register(p)
			}
		case k < 86:
			// another part removes p as a callee
			q := parts[rng.IntN(len(parts))]
			if p.regd && p.reg != 0 {
				req := q.c.nextReq()
				q.metaReq[req] = true
				log = append(log, fmt.Sprintf("%d remove_callee %d", q.c.id, p.c.id))
				q.c.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: q.c.opts(nil), URI: []byte("wamp.registration.remove_callee"), Args: raw(t, proto.JSON, []any{p.reg, p.c.id})})
				p.regd = false
			}
		case k < 92:
			i := rng.IntN(len(parts))
			log = append(log, fmt.Sprintf("%d leaves", parts[i].c.id))
			if rng.IntN(2) == 0 {
				parts[i].c.drop()
			} else {
				parts[i].c.send(&proto.Message{Type: proto.CodeGoodbye, Dict: parts[i].c.opts(nil), URI: []byte(proto.CloseCloseRealm)})
			}
			delete(uids, parts[i].uid)
			parts[i] = mk()
			if rng.IntN(2) == 0 {
				register(parts[i])
			}
		}
		pump()
	}
	for _, p := range parts {
		for req := range p.open {
			p.c.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: p.c.opts(nil), URI: []byte("com.x"), Args: callArgs(p, req)})
			delete(p.open, req)
		}
	}
	pump()
	for round := 0; round < 5; round++ {
		for _, p := range parts {
			for inv := range p.live {
				p.c.yield(inv, nil, []any{"end"})
				delete(p.live, inv)
			}
		}
		pump()
		e.advance(100 * time.Millisecond)
		pump()
	}
	for _, p := range parts {
		if len(p.pending) != 0 {
			fail("%d still waits for %v", p.c.id, p.pending)
		}
	}
	for _, p := range parts {
		p.c.drop()
	}
	e.sync()
	for i, x := range e.execs {
		sh := e.r.Shard(i)
		x.do(func() {
			if sh.traffic.callsInFlight != 0 {
				t.Errorf("shard %d: callsInFlight %d", i, sh.traffic.callsInFlight)
			}
			if b := sh.callBacklog.Load(); b != 0 {
				t.Errorf("shard %d: callBacklog %d", i, b)
			}
			if sh.rerouteHeld != 0 {
				t.Errorf("shard %d: reroute bytes %d", i, sh.rerouteHeld)
			}
		})
	}
}
