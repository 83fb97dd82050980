package route

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A streaming callee on another node whose caller's shard is too busy to
// take its progressive results is told the call is over (INTERRUPT
// killnowait) even when the mesh refuses that interrupt at first (the
// caller's node's outbound queue full past its reserve): it is kept and
// sent again, as every other interrupt that ends a call at its caller's
// node is (meshStop, keepStop). Before, it was sent once and forgotten:
// the callee's node held the invocation (one of mesh.max_invocations) and
// its callee streamed on, every result dropped at the caller's node,
// until the callee ended on its own or a node left.
func TestMeshBackloggedStreamInterruptKept(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee, caller := es[1].join(proto.MsgPack), es[0].join(proto.MsgPack)
	callee.register("com.stream", nil)
	mm.sync()
	req := caller.call("com.stream", map[string]any{"receive_progress": true}, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	unblock := stallExec(t, es[0], 0)
	big := []any{[]byte(strings.Repeat("x", 4<<20))}
	for range maxCallBacklog/(4<<20) + 2 { // past maxCallBacklog
		callee.yield(inv.Request, map[string]any{"progress": true}, big)
	}
	mm.syncExcept(0)
	// The caller's node's queue is full when its shard finds the stream
	// refused and interrupts the callee.
	full := errors.New("outbound queue full")
	mm.nodes[0].sendErr.Store(&full)
	unblock()
	for {
		m := caller.recv()
		if m.Type == proto.CodeResult {
			continue
		}
		if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIUnavailable {
			t.Fatalf("caller got %s", describe(m))
		}
		break
	}
	mm.sync()
	if p := es[1].r.MeshPending(); p != 1 {
		t.Fatalf("MeshPending = %d on the callee's node with the interrupt refused, want 1", p)
	}
	mm.nodes[0].sendErr.Store(nil)
	es[0].advance(time.Second)
	mm.sync()
	select {
	case m := <-callee.peer.in:
		if m.Type != proto.CodeInterrupt || m.Request != inv.Request || m.Opt.String(proto.KeyMode) != "killnowait" {
			t.Fatalf("callee got %s, want INTERRUPT killnowait for %d", describe(m), inv.Request)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("the callee got no INTERRUPT once the caller's node's queue took again (MeshPending %d on its node)", es[1].r.MeshPending())
	}
	mm.sync()
	if p := es[1].r.MeshPending(); p != 0 {
		t.Fatalf("MeshPending = %d on the callee's node after the interrupt went", p)
	}
	caller.quiet()
	assertNothingPending(t, mm)
}
