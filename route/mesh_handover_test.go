package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A callee that gives a single registration up on node A gets its
// UNREGISTERED once A's claim store has the claim back (Mesh.Released),
// not before: a standby on node B that registers on reading it is not
// refused for a claim still held. A store that does not answer holds the
// UNREGISTERED meshReleaseWait at most. Other registrations' UNREGISTERs
// are answered at once.
func TestMeshUnregisteredAfterRelease(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a := es[0].join(proto.JSON)
	id := a.register("com.one", nil)
	shared := a.register("com.shared", map[string]any{"invoke": "roundrobin"})
	mm.sync()
	gate := make(chan struct{})
	mm.mu.Lock()
	mm.releasedGate = gate
	mm.mu.Unlock()

	a.send(&proto.Message{Type: proto.CodeUnregister, Request: 100, ID: shared})
	if m := a.expect(proto.CodeUnregistered); m.Request != 100 {
		t.Fatalf("UNREGISTERED %s", describe(m))
	}
	a.send(&proto.Message{Type: proto.CodeUnregister, Request: 101, ID: id})
	a.quiet() // the release is on its way
	close(gate)
	if m := a.expect(proto.CodeUnregistered); m.Request != 101 {
		t.Fatalf("UNREGISTERED %s", describe(m))
	}

	// A store that never answers: the UNREGISTERED comes after
	// meshReleaseWait.
	mm.mu.Lock()
	mm.releasedGate = make(chan struct{})
	mm.mu.Unlock()
	id = a.register("com.one", nil)
	start := time.Now()
	a.send(&proto.Message{Type: proto.CodeUnregister, Request: 102, ID: id})
	if m := a.expect(proto.CodeUnregistered); m.Request != 102 {
		t.Fatalf("UNREGISTERED %s", describe(m))
	}
	if d := time.Since(start); d < meshReleaseWait-50*time.Millisecond || d > meshReleaseWait+2*time.Second {
		t.Fatalf("UNREGISTERED after %v with the store silent, want about %v", d, meshReleaseWait)
	}
}

// The directory can lag behind the claim store: node B still shows A's
// callee of a single registration that A gave up (its change not read
// yet) when B's REGISTER comes. The store, which has the claim back,
// decides: REGISTERED, and once B reads A's change there is no conflict
// left (no callee revoked) and B's callee serves A's callers. A REGISTER
// on A then is refused: B holds it. Before, B refused
// procedure_already_exists from its directory. B's REGISTERED waits for
// A's change (heldGrant); a grant whose other part stays shown for
// meshRevokeGrace is refused and given back.
func TestMeshSingleRegisterWhileDirectoryLags(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a := es[0].join(proto.JSON)
	b := es[1].join(proto.JSON)
	id := a.register("com.one", nil)
	mm.sync()
	mm.mu.Lock()
	mm.hold = true // A's directory change is late
	mm.mu.Unlock()
	a.send(&proto.Message{Type: proto.CodeUnregister, Request: 100, ID: id})
	a.expect(proto.CodeUnregistered)
	b.send(&proto.Message{Type: proto.CodeRegister, Request: 200, Dict: b.opts(nil), URI: []byte("com.one")})
	b.quiet() // granted, held while A's callee is shown
	mm.release()
	if m := b.expect(proto.CodeRegistered); m.Request != 200 {
		t.Fatalf("REGISTERED %s", describe(m))
	}
	mm.sync()
	caller := es[0].join(proto.JSON)
	req := caller.call("com.one", nil, nil, nil)
	inv := b.expect(proto.CodeInvocation)
	b.yield(inv.Request, nil, []any{"B"})
	if r := caller.expect(proto.CodeResult); r.Request != req || argsOf(r)[0] != "B" {
		t.Fatalf("result %s", describe(r))
	}
	time.Sleep(meshRevokeGrace + 200*time.Millisecond)
	mm.sync()
	b.quiet()
	if n := es[1].r.MeshStats().Revoked.Load(); n != 0 {
		t.Fatalf("B revoked %d callees", n)
	}
	a.send(&proto.Message{Type: proto.CodeRegister, Request: 101, Dict: a.opts(nil), URI: []byte("com.one")})
	a.expectError(proto.CodeRegister, 101, proto.URIProcedureAlreadyExists)

	// A's change never read within meshRevokeGrace: refused, the claim
	// given back.
	id = a.register("com.two", nil)
	mm.sync()
	mm.mu.Lock()
	mm.hold = true
	mm.mu.Unlock()
	a.send(&proto.Message{Type: proto.CodeUnregister, Request: 102, ID: id})
	a.expect(proto.CodeUnregistered)
	start := time.Now()
	b.send(&proto.Message{Type: proto.CodeRegister, Request: 201, Dict: b.opts(nil), URI: []byte("com.two")})
	b.expectError(proto.CodeRegister, 201, proto.URIProcedureAlreadyExists)
	if d := time.Since(start); d < meshRevokeGrace-50*time.Millisecond {
		t.Fatalf("refused after %v, want after meshRevokeGrace", d)
	}
	mm.release()
	mm.sync()
	b.register("com.two", nil)
}

// With the claim store unreachable (a claim accepted provisionally), the
// directory is all there is: a single REGISTER for a procedure another
// node is seen to hold is refused, as before the store was asked over the
// directory's entries (TestMeshSingleRegisterWhileDirectoryLags).
func TestMeshProvisionalClaimHonoursDirectory(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a := es[0].join(proto.JSON)
	b := es[1].join(proto.JSON)
	a.register("com.one", nil)
	mm.sync()
	mm.mu.Lock()
	mm.noClaim = true
	mm.mu.Unlock()
	b.send(&proto.Message{Type: proto.CodeRegister, Request: 100, Dict: b.opts(nil), URI: []byte("com.one")})
	b.expectError(proto.CodeRegister, 100, proto.URIProcedureAlreadyExists)
	// A procedure nobody holds is registered provisionally.
	b.register("com.two", nil)
}
