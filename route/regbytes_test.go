package route

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The bytes sessions' registrations hold are bounded on the router
// (Config.MaxRegistrationBytes), a client address or authid at most a
// quarter of them (and below what is left free). Before, only the count
// was bounded per session (limits.registrations, 65,536): with
// deploy/small-board.yaml one address's 64 connections registering 1,024
// procedures of 4 KB each took the router to 340 MB of RSS, nothing
// refused.
func TestRegistrationBytesBounded(t *testing.T) {
	const budget = 4 << 20
	e := newEnv(t, 2, func(c *Config) { c.MaxRegistrationBytes = budget })
	a := e.connectFrom(0, proto.MsgPack, "198.51.100.7:4000")
	a.hello("realm1", allFeatures, nil)
	a.id = a.expect(proto.CodeWelcome).ID
	long := strings.Repeat("x", 4000)
	quarter := budget / 4 / (4000 + 8 + regOverhead)
	refusedAt := -1
	for i := 0; i < 2*quarter; i++ {
		req := a.nextReq()
		a.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: a.opts(nil), URI: []byte(fmt.Sprintf("%s%08d", long, i))})
		if m := a.recv(); m.Type == proto.CodeError {
			if string(m.URI) != proto.URIUnavailable {
				t.Fatalf("REGISTER %d: ERROR %s, want %s", i, m.URI, proto.URIUnavailable)
			}
			refusedAt = i
			break
		}
	}
	st := e.r.Stats()
	t.Logf("one address's REGISTERs of 4 KB: refused at %d (its quarter of %d bytes: %d), %d bytes held, %d refused", refusedAt, budget, quarter, st.RegistrationBytes, st.RegistrationsRefused)
	if refusedAt != quarter || st.RegistrationsRefused != 1 || st.RegistrationBytes > budget/4 {
		t.Fatalf("refused at REGISTER %d, want %d; %d refused, %d bytes held", refusedAt, quarter, st.RegistrationsRefused, st.RegistrationBytes)
	}
	// The session is kept: a CALL to one of its procedures still reaches it.
	c := e.connectFrom(1, proto.MsgPack, "192.0.2.1:4000")
	c.hello("realm1", allFeatures, nil)
	c.expect(proto.CodeWelcome)
	c.call(fmt.Sprintf("%s%08d", long, 0), nil, nil, nil)
	a.expect(proto.CodeInvocation)
	// Another connection from the same address shares the quarter; one
	// from another address has its own, sharing a's shared procedures.
	a2 := e.connectFrom(1, proto.MsgPack, "198.51.100.7:4001")
	a2.hello("realm1", allFeatures, nil)
	a2.expect(proto.CodeWelcome)
	req := a2.nextReq()
	other := long + "-a2"
	a2.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: a2.opts(nil), URI: []byte(other)})
	a2.expectError(proto.CodeRegister, req, proto.URIUnavailable)
	b := e.connectFrom(1, proto.MsgPack, "203.0.113.9:4000")
	b.hello("realm1", allFeatures, nil)
	b.expect(proto.CodeWelcome)
	for i := 0; i < quarter; i++ {
		b.register(fmt.Sprintf("%s-b%08d", long, i), nil)
	}
	// What a's session leaves goes back to its address.
	a.goodbye()
	e.sync()
	a2.register(other, nil)
	if st := e.r.Stats(); st.RegistrationBytes != int64(quarter)*(4010+regOverhead)+regCost(proto.MatchExact, other) {
		t.Fatalf("%d bytes held after a left, want b's %d and a2's one", st.RegistrationBytes, int64(quarter)*(4010+regOverhead))
	}
}

// checkRegBytes asserts that Config.MaxRegistrationBytes' counter is what
// the attached sessions' registrations cost, and each owner's its
// sessions'.
func checkRegBytes(t *testing.T, e *env, when string) {
	t.Helper()
	e.sync()
	var total int64
	by := map[string]int64{}
	wild := map[*registration]map[string]int{} // its callees by owner
	for i, x := range e.execs {
		sh := e.r.Shard(i)
		x.do(func() {
			for ss := range sh.attached {
				for _, ref := range ss.regs {
					total += regHoldCost(ref.reg.uri)
					if ss.subOwner != "" {
						by[ss.subOwner] += regHoldCost(ref.reg.uri)
					}
					if ref.reg.match == proto.MatchWildcard {
						if wild[ref.reg] == nil {
							wild[ref.reg] = map[string]int{}
						}
						wild[ref.reg][ss.subOwner]++
					}
				}
			}
		})
	}
	// A wildcard pattern's index, once, to its maker (addCallee).
	for reg, holders := range wild {
		n := wildcardIndexCost(reg.match, reg.uri)
		total += n
		for _, rm := range *e.r.realms.Load() {
			rm.mu.RLock()
			if r, ok := rm.regs.get(reg.match, reg.uri); ok && r == reg {
				if holders[reg.maker] == 0 || holders[reg.maker] != reg.makerHolds {
					t.Errorf("%s: %q's index is counted to %q, holding it %d times (%d counted), its callees %v", when, reg.uri, reg.maker, holders[reg.maker], reg.makerHolds, holders)
				}
				if reg.maker != "" {
					by[reg.maker] += n
				}
			}
			rm.mu.RUnlock()
		}
	}
	b := &e.r.regBytes
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.total != total {
		t.Errorf("%s: the router counts %d registration bytes, its sessions hold %d", when, b.total, total)
	}
	for k, n := range b.by {
		if by[k] != n {
			t.Errorf("%s: owner %q counted %d bytes, its sessions hold %d", when, k, n, by[k])
		}
		delete(by, k)
	}
	for k, n := range by {
		t.Errorf("%s: owner %q holds %d bytes the router does not count", when, k, n)
	}
}

// Every path that ends a registration gives its bytes back: UNREGISTER, a
// refusal, the session's leave (GOODBYE, a dropped connection, a kill),
// the meta API's remove_callee, a reload's revocation; the counter is 0
// at the end.
func TestRegistrationBytesNoDrift(t *testing.T) {
	z, err := NewRBAC([]Role{{Name: "app", Permissions: []Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Register: true, Publish: true, Subscribe: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 2, func(c *Config) {
		c.MaxRegistrationBytes = 1 << 20
		c.Realms = append(c.Realms, RealmConfig{Name: "secure", Anonymous: true, AnonymousRole: "app", Authorizer: z})
	})
	joinFrom := func(shard int, remote, realm string, roles map[string]any) *tc {
		c := e.connectFrom(shard, proto.JSON, remote)
		c.hello(realm, roles, nil)
		c.id = c.expect(proto.CodeWelcome).ID
		return c
	}
	a := joinFrom(0, "198.51.100.7:1", "realm1", revocableFeatures)
	a2 := joinFrom(1, "198.51.100.7:2", "realm1", revocableFeatures)
	ids := map[string]uint64{}
	for _, p := range []string{"com.a", "com.b", "com.c", "com.d"} {
		ids[p] = a.register(p, nil)
	}
	a.register("com.shared", map[string]any{"invoke": "roundrobin"})
	a2.register("com.shared", map[string]any{"invoke": "roundrobin"})
	a.register("com.w..x", map[string]any{"match": "wildcard"})
	a2.register("com.", map[string]any{"match": "prefix"})
	checkRegBytes(t, e, "registered")
	// A shared wildcard pattern's index is counted once, to the callee
	// that made it, and stays so when that callee leaves it first.
	b := joinFrom(1, "203.0.113.5:1", "realm1", revocableFeatures)
	shared := map[string]any{"match": "wildcard", "invoke": "roundrobin"}
	vy := a.register("com.v..y", shared)
	b.register("com.v..y", shared)
	checkRegBytes(t, e, "a shared wildcard registration")
	req := a.nextReq()
	a.send(&proto.Message{Type: proto.CodeUnregister, Request: req, ID: vy})
	a.expect(proto.CodeUnregistered)
	checkRegBytes(t, e, "its maker unregistered")
	b.goodbye()
	checkRegBytes(t, e, "its last callee left")
	// Refused ones charge nothing: a duplicate, another policy.
	req = a.nextReq()
	a.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: a.opts(nil), URI: []byte("com.a")})
	a.expectError(proto.CodeRegister, req, proto.URIProcedureAlreadyExists)
	req = a2.nextReq()
	a2.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: a2.opts(nil), URI: []byte("com.shared")})
	a2.expectError(proto.CodeRegister, req, proto.URIProcedureExistsInvocationPolicyConflict)
	checkRegBytes(t, e, "refused REGISTERs")

	req = a.nextReq()
	a.send(&proto.Message{Type: proto.CodeUnregister, Request: req, ID: ids["com.a"]})
	a.expect(proto.CodeUnregistered)
	checkRegBytes(t, e, "UNREGISTER")

	admin := joinFrom(0, "192.0.2.9:1", "realm1", allFeatures)
	admin.callMeta("wamp.registration.remove_callee", []any{ids["com.b"], a.id}, nil)
	a.expectRevoked(proto.CodeUnregistered, "registration", ids["com.b"], "")
	checkRegBytes(t, e, "remove_callee")

	// A reload takes one grant, then the realm.
	s1 := joinFrom(0, "198.51.100.8:1", "secure", revocableFeatures)
	s2 := joinFrom(1, "192.0.2.10:1", "secure", allFeatures)
	appX := s1.register("app.x", nil)
	s1.register("other.x", nil)
	s2.register("app.y", nil)
	checkRegBytes(t, e, "secure registered")
	z2, err := NewRBAC([]Role{{Name: "app", Permissions: []Permission{{URI: "other.", Match: proto.MatchPrefix, Register: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	rc := *e.r.Realm("secure").conf()
	rc.Authorizer = z2
	keep := []RealmConfig{*e.r.Realm("realm1").conf(), *e.r.Realm("realm2").conf(), *e.r.Realm("trusted").conf()}
	if err := e.r.Reload(append(keep, rc)); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.sync()
	s1.expectRevoked(proto.CodeUnregistered, "registration", appX, proto.URINotAuthorized)
	checkRegBytes(t, e, "a reload took a grant")
	if err := e.r.Reload(keep); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.sync()
	if m := s2.expect(proto.CodeGoodbye); string(m.URI) != proto.CloseKilled {
		t.Fatalf("a reload took the realm: GOODBYE %s", m.URI)
	}
	checkRegBytes(t, e, "a reload took the realm")

	admin.callMeta("wamp.session.kill", []any{a2.id}, nil)
	a2.expect(proto.CodeGoodbye)
	checkRegBytes(t, e, "killed")
	a.drop()
	checkRegBytes(t, e, "dropped")
	admin.goodbye()
	e.sync()
	if st := e.r.Stats(); st.RegistrationBytes != 0 {
		t.Fatalf("%d registration bytes counted with no registration left", st.RegistrationBytes)
	}
	if b := &e.r.regBytes; len(b.by) != 0 {
		t.Fatalf("owners kept with nothing registered: %v", b.by)
	}
}

// The bytes a registration counts in limits.registration_bytes are about
// what a new one holds of heap, a wildcard pattern's trie nodes included.
func TestRegistrationBytesCountWhatTheyHold(t *testing.T) {
	// cmd/edgewamp's least limits.registration_bytes (1 MiB) must let a
	// quarter hold 56 registrations of the longest URI.
	if long := strings.Repeat("a", proto.MaxURILen); 4*56*regCost(proto.MatchExact, long) > 1<<20 {
		t.Fatalf("56 registrations of the longest URI count %d bytes, more than a quarter of 1 MiB", 56*regCost(proto.MatchExact, long))
	}
	for _, c := range []struct {
		name  string
		n     int
		uri   func(i int) string
		match string
	}{
		{"exact short", 12000, func(i int) string { return fmt.Sprintf("c.t%07d", i) }, ""},
		{"prefix short", 12000, func(i int) string { return fmt.Sprintf("c.t%07d", i) }, "prefix"},
		{"wildcard short", 1000, func(i int) string { return fmt.Sprintf("c.t%07d.", i) }, "wildcard"},
		// Patterns sharing no trie node (wildcardIndexCost): one of 64
		// components held 19,513 bytes of heap and counted 641.
		{"wildcard 8 components", 1000, func(i int) string { return fmt.Sprintf("w%d", i) + strings.Repeat(".b", 7) }, "wildcard"},
		{"wildcard 64 empty", 1000, func(i int) string { return fmt.Sprintf("w%d", i) + strings.Repeat(".", 63) }, "wildcard"},
		{"wildcard 64 components", 1000, func(i int) string { return fmt.Sprintf("w%d", i) + strings.Repeat(".b", 63) }, "wildcard"},
		{"exact 4KiB", 2000, func(i int) string { return fmt.Sprintf("c.t%07d.", i) + strings.Repeat("a", proto.MaxURILen-11) }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 1, func(c *Config) { c.MaxRegistrations = 1 << 20 })
			sh, x := e.r.Shard(0), e.execs[0]
			tp := &testPeer{ser: proto.JSON, in: make(chan *proto.Message, 4096), sh: sh, exec: x, remote: "test-1"}
			p := &mutePeer{testPeer: tp}
			cl := &tc{e: e, t: t, peer: tp, sh: sh, exec: x}
			x.do(func() { cl.sess = sh.Open(p); tp.sess = cl.sess })
			cl.hello("realm1", allFeatures, nil)
			cl.id = cl.expect(proto.CodeWelcome).ID
			var o proto.Raw
			if c.match != "" {
				o = cl.opts(map[string]any{"match": c.match})
			} else {
				o = cl.opts(nil)
			}
			msgs := make([][]byte, 0, c.n)
			for i := range c.n {
				m := &proto.Message{Type: proto.CodeRegister, Request: cl.nextReq(), Dict: o, URI: []byte(c.uri(i))}
				r, err := cl.enc.Append(nil, tp.ser, m)
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, r)
			}
			p.mute.Store(true)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			x.do(func() {
				for _, r := range msgs {
					sh.Receive(cl.sess, r)
				}
			})
			runtime.GC()
			runtime.ReadMemStats(&m1)
			runtime.KeepAlive(msgs)
			var regs int
			x.do(func() { regs = len(cl.sess.regs) })
			if regs != c.n {
				t.Fatalf("%d registrations, want %d", regs, c.n)
			}
			st := e.r.Stats()
			counted := st.RegistrationBytes / int64(c.n)
			held := (int64(m1.HeapInuse) - int64(m0.HeapInuse)) / int64(c.n)
			t.Logf("%d bytes of heap per new registration, counted %d", held, counted)
			if held > counted*5/4 {
				t.Fatalf("a new registration holds %d bytes of heap and is counted %d in registration_bytes", held, counted)
			}
		})
	}
}

// On a mesh a single REGISTER is charged once its claim is granted; one
// refused for the bytes gives the claim back, so that another node's
// callee may take the procedure, and charges nothing.
func TestRegistrationBytesMeshSingleRefusedGivesClaimBack(t *testing.T) {
	const budget = 1 << 20
	mm, es := newMemMesh(t, 2, 1, func(c *Config) { c.MaxRegistrationBytes = budget })
	a := es[0].connectFrom(0, proto.JSON, "198.51.100.7:1")
	a.hello("realm1", allFeatures, nil)
	a.id = a.expect(proto.CodeWelcome).ID
	long := strings.Repeat("x", 4000)
	n := 0
	for ; n < budget/(4000+regOverhead); n++ {
		req := a.nextReq()
		a.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: a.opts(map[string]any{"invoke": "roundrobin"}), URI: []byte(fmt.Sprintf("%s%08d", long, n))})
		if m := a.recv(); m.Type == proto.CodeError {
			if string(m.URI) != proto.URIUnavailable {
				t.Fatalf("REGISTER %d: ERROR %s", n, m.URI)
			}
			break
		}
	}
	held := es[0].r.Stats().RegistrationBytes
	req := a.nextReq()
	a.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: a.opts(nil), URI: []byte(long + "-single")})
	a.expectError(proto.CodeRegister, req, proto.URIUnavailable)
	mm.sync()
	mm.mu.Lock()
	owner, claimed := mm.claims[subKey("realm1", proto.MatchExact, long+"-single")]
	mm.mu.Unlock()
	if claimed {
		t.Fatalf("after %d shared registrations, a single REGISTER refused for the bytes left its claim with %s", n, owner)
	}
	if st := es[0].r.Stats(); st.RegistrationBytes != held || st.RegistrationsRefused != 2 {
		t.Fatalf("%d bytes (was %d), %d refused: the refused single REGISTER charged", st.RegistrationBytes, held, st.RegistrationsRefused)
	}
	b := es[1].join(proto.JSON)
	b.register(long+"-single", nil)
	a.goodbye()
	mm.sync()
	if st := es[0].r.Stats(); st.RegistrationBytes != 0 {
		t.Fatalf("%d registration bytes after the session left", st.RegistrationBytes)
	}
}
