package route

import (
	"strconv"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// forceRegState is what a realm counts of its registrations, for the
// take-over's tests.
type forceRegState struct {
	wildRegs, owners, walks int
	bytes                   int64
	ids                     int
}

func forceState(e *env) forceRegState {
	rm := e.r.Realm("trusted")
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	e.r.regBytes.mu.Lock()
	defer e.r.regBytes.mu.Unlock()
	return forceRegState{rm.wildRegs, len(rm.wildRegsBy), len(rm.regWalks), e.r.regBytes.total, len(rm.regByID)}
}

// A force_reregister of a wildcard pattern takes it over in one step
// (takeOver, overDone): the realm's wildcard counts, the owner's walk and
// the registration bytes are those of the one new registration, and all
// go back to nothing when it is unregistered; an owner at its share of
// the registration bytes takes its procedure over (the old callees'
// holds leave with the take-over, as when they left first). A take-over
// refused after the registration was taken out of the table puts it
// back as it was (putBack): the old callee still serves, the counts and
// ids are unchanged, and the removals it had counted in the other loop's
// bound are given back.
func TestForceReregisterTakeOverCounts(t *testing.T) {
	// 13 components: walked (walkShareFrom).
	pattern := "com.svc" + strings.Repeat(".x", 10) + "..longerpatternname"
	t.Run("taken", func(t *testing.T) {
		e := newEnv(t, 2, nil)
		old := e.joinAs(proto.JSON, "svc") // shard 0
		neu := e.joinAs(proto.JSON, "svc") // shard 1
		if old.sh != e.r.Shard(0) || neu.sh != e.r.Shard(1) {
			t.Fatal("sessions not on the expected shards")
		}
		oldID := old.register(pattern, map[string]any{"match": "wildcard"})
		before := forceState(e)
		id := neu.register(pattern, map[string]any{"match": "wildcard", "invoke": "roundrobin", "force_reregister": true})
		if id == oldID {
			t.Fatal("the new registration kept the old id")
		}
		e.sync()
		if after := forceState(e); after != before {
			t.Fatalf("after the take-over: %+v, want %+v as before it", after, before)
		}
		if b := e.r.Shard(0).removeBacklog.Load(); b != 0 {
			t.Fatalf("shard 0's removal backlog %d after it ran the removal, want 0", b)
		}
		req := neu.nextReq()
		neu.send(&proto.Message{Type: proto.CodeUnregister, Request: req, ID: id})
		neu.expect(proto.CodeUnregistered)
		// The old callee's own UNREGISTER of its replaced registration.
		req = old.nextReq()
		old.send(&proto.Message{Type: proto.CodeUnregister, Request: req, ID: oldID})
		old.expectError(proto.CodeUnregister, req, proto.URINoSuchRegistration)
		e.sync()
		if st := forceState(e); st != (forceRegState{}) {
			t.Fatalf("after both left the pattern: %+v, want nothing counted", st)
		}
	})
	t.Run("at the owner's share", func(t *testing.T) {
		e := newEnv(t, 2, func(c *Config) { c.MaxRegistrationBytes = 1 << 20 })
		old := e.joinAs(proto.JSON, "svc") // shard 0
		neu := e.joinAs(proto.JSON, "svc") // shard 1
		caller := e.joinAs(proto.JSON, "caller")
		if old.sh != e.r.Shard(0) || neu.sh != e.r.Shard(1) {
			t.Fatal("sessions not on the expected shards")
		}
		oldID := old.register(pattern, map[string]any{"match": "wildcard"})
		fillRegShare(t, neu)
		before := forceState(e)
		id := neu.register(pattern, map[string]any{"match": "wildcard", "force_reregister": true})
		e.sync()
		if after := forceState(e); after != before {
			t.Fatalf("after the take-over at the owner's share: %+v, want %+v as before it", after, before)
		}
		req := old.nextReq()
		old.send(&proto.Message{Type: proto.CodeUnregister, Request: req, ID: oldID})
		old.expectError(proto.CodeUnregister, req, proto.URINoSuchRegistration)
		caller.call("com.svc"+strings.Repeat(".x", 10)+".any.longerpatternname", nil, nil, nil)
		if m := neu.expect(proto.CodeInvocation); m.ID != id {
			t.Fatalf("INVOCATION of registration %d, want the new one, %d", m.ID, id)
		}
	})
	t.Run("put back", func(t *testing.T) {
		// A take-over refused after takeOver (for a bound of the new
		// callee's, as addCallee's checks after it may refuse).
		e := newEnv(t, 2, nil)
		old := e.joinAs(proto.JSON, "svc") // shard 0
		neu := e.joinAs(proto.JSON, "svc") // shard 1
		caller := e.joinAs(proto.JSON, "caller")
		if old.sh != e.r.Shard(0) || neu.sh != e.r.Shard(1) {
			t.Fatal("sessions not on the expected shards")
		}
		oldID := old.register(pattern, map[string]any{"match": "wildcard"})
		before := forceState(e)
		rm := e.r.Realm("trusted")
		var mid forceRegState
		e.execs[1].do(func() {
			sh := e.r.Shard(1)
			rm.mu.Lock()
			reg, _ := rm.regs.get(proto.MatchWildcard, pattern)
			o, full := sh.takeOver(rm, neu.sess, reg)
			if o == nil || full {
				rm.mu.Unlock()
				t.Errorf("takeOver: %v %v, want the registration taken", o, full)
				return
			}
			o.putBack(e.r, rm)
			rm.mu.Unlock()
			mid = forceState(e)
		})
		if mid != before {
			t.Fatalf("after a take-over put back: %+v, want %+v as before it", mid, before)
		}
		if b := e.r.Shard(0).removeBacklog.Load(); b != 0 {
			t.Fatalf("shard 0's removal backlog %d after a take-over put back, want 0", b)
		}
		old.quiet()
		caller.call("com.svc"+strings.Repeat(".x", 10)+".any.longerpatternname", nil, nil, nil)
		if m := old.expect(proto.CodeInvocation); m.ID != oldID {
			t.Fatalf("INVOCATION of registration %d, want the old one, %d", m.ID, oldID)
		}
	})
}

// fillRegShare fills c's owner's share of the registration bytes (a
// quarter) with registrations costing less than a 13-component pattern's
// hold.
func fillRegShare(t *testing.T, c *tc) {
	t.Helper()
	for _, size := range []int{4000, 1} {
		for i := 0; ; i++ {
			req := c.nextReq()
			c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(nil),
				URI: []byte("com.f" + strconv.Itoa(size) + "." + strings.Repeat("f", size) + strconv.Itoa(i))})
			if m := c.recv(); m.Type == proto.CodeError {
				if string(m.URI) != proto.URIUnavailable {
					t.Fatalf("filler: %s", describe(m))
				}
				break
			}
		}
	}
}
