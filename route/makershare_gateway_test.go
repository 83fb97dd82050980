package route

import (
	"strconv"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A pattern's index whose maker leaves it must not move to the HTTP
// gateway's sessions (the owner "", bounded by the budget's total only):
// any HTTP client can make the gateway join a pattern (an event stream
// with match=wildcard), so one address could make patterns up to its
// quarter, have the gateway join them, leave them, and make as many
// again, round after round, until the realm's budget was full (766,020
// of 1,048,576 bytes after three rounds, the maker counted 0; review12's
// scratch test). The index stays the maker's when no address or authid
// holding the pattern can take it.
func TestPatternMakerIndexNotMovedToGateway(t *testing.T) {
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
			// The maker at an address; the gateway's session: anonymous,
			// no address (its owner is "", as the HTTP gateway's are).
			a := join("192.0.2.1:1000")
			sh, x := e.r.Shard(0), e.execs[0]
			gp := &testPeer{ser: proto.JSON, in: make(chan *proto.Message, 4096), sh: sh, exec: x}
			g := &tc{e: e, t: t, peer: gp, sh: sh, exec: x}
			x.do(func() { g.sess = sh.Open(noAddrPeer{gp}); gp.sess = g.sess })
			g.hello("realm1", allFeatures, nil)
			g.id = g.expect(proto.CodeWelcome).ID
			if o := g.sess.retainOwner(); o != "" {
				t.Fatalf("the gateway-like session's owner is %q, want none", o)
			}
			tail := strings.Repeat(".x", 16) + "."
			n := 0
			for round := 0; round < 3; round++ {
				var made []*proto.Message
				var uris []string
				for {
					n++
					u := "a" + strconv.Itoa(n) + tail
					m := a.requestMany(code, []string{u}, opt)[0]
					if m.Type != ok {
						break
					}
					made, uris = append(made, m), append(uris, u)
				}
				for _, u := range uris {
					mustAll(t, g.requestMany(code, []string{u}, opt), ok) // the gateway joins
				}
				for _, m := range made {
					a.send(&proto.Message{Type: undo, Request: a.nextReq(), ID: m.ID})
					a.expect(undone)
				}
			}
			e.sync()
			b.mu.Lock()
			total, by := b.total, map[string]int64{}
			for k, v := range b.by {
				by[k] = v
			}
			b.mu.Unlock()
			t.Logf("after three rounds %d of %d bytes counted: %v", total, budget, by)
			if total > budget/2 {
				t.Errorf("one address and the gateway's joins hold %d of %d bytes after three rounds: the maker's index moved to the gateway's sessions, so it made as many again each round", total, budget)
			}
		})
	}
}

// noAddrPeer is a test peer reporting no remote address (as the HTTP
// gateway's in-process sessions do).
type noAddrPeer struct{ *testPeer }

func (p noAddrPeer) Transport() TransportInfo {
	ti := p.testPeer.Transport()
	ti.RemoteAddr = ""
	return ti
}
