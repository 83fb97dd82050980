package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshForceReregisterRefused: on a mesh, where a single
// registration's claim and other nodes' callees would have to be handed
// over, a force_reregister that would replace callees is refused with
// wamp.error.option_not_allowed, the registration left as it was, rather
// than ignored (wamp.error.procedure_already_exists, as before) or
// carried out on one node only.
func TestMeshForceReregisterRefused(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a := es[0].joinAs(proto.JSON, "svc")
	a.register("com.one", nil)
	mm.sync()
	force := map[string]any{"force_reregister": true}
	for i, c := range []*tc{es[0].joinAs(proto.JSON, "svc"), es[1].joinAs(proto.JSON, "svc")} {
		req := c.nextReq()
		c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(force), URI: []byte("com.one")})
		if m := c.expectError(proto.CodeRegister, req, proto.URIOptionNotAllowed); len(argsOf(m)) == 0 {
			t.Fatalf("node %d: the refusal says nothing", i)
		}
	}
	// Nothing to replace: a plain REGISTER.
	b := es[1].joinAs(proto.JSON, "svc")
	b.register("com.two", force)
	mm.sync()
	caller := es[1].joinAs(proto.JSON, "caller")
	caller.call("com.one", nil, nil, nil)
	inv := a.expect(proto.CodeInvocation)
	a.yield(inv.Request, nil, []any{"A"})
	if r := caller.expect(proto.CodeResult); argsOf(r)[0] != "A" {
		t.Fatalf("com.one answered %v", argsOf(r))
	}
}
