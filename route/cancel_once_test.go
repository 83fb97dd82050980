package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A kill CANCEL and then a killnowait CANCEL of the same call: the callee
// gets one INTERRUPT (the kill's), never a second for its one invocation,
// and the killnowait still ends the call at the caller at once.
func TestCancelKillThenKillNoWaitInterruptsOnce(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.MsgPack)
	callee.register("com.slow", nil)
	killThenKillNoWait(t, caller, callee, e.sync)
}

// The same across the mesh: the callee's node sends its callee one
// INTERRUPT for a kill CANCEL and then a killnowait CANCEL of one call.
func TestMeshCancelKillThenKillNoWaitInterruptsOnce(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee := es[1].join(proto.JSON)
	callee.register("com.slow", nil)
	mm.sync()
	caller := es[0].join(proto.CBOR)
	killThenKillNoWait(t, caller, callee, mm.sync)
}

// killThenKillNoWait has caller call com.slow of callee, CANCEL it in
// kill mode, then in killnowait mode (sync settling the router between):
// the callee gets one INTERRUPT, the caller its ERROR canceled at once,
// and the callee's late answer is discarded.
func killThenKillNoWait(t *testing.T, caller, callee *tc, sync func()) {
	t.Helper()
	req := caller.call("com.slow", nil, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "kill"})})
	if m := callee.expect(proto.CodeInterrupt); m.Request != inv.Request || m.Opt.String(proto.KeyMode) != "kill" {
		t.Fatalf("first INTERRUPT %s mode=%q", describe(m), m.Opt.String(proto.KeyMode))
	}
	caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
	caller.expectError(proto.CodeCall, req, proto.URICanceled)
	sync()
	callee.quiet() // no second INTERRUPT
	// The callee's late answer is discarded.
	callee.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv.Request, Dict: callee.opts(nil), URI: []byte(proto.URICanceled)})
	sync()
	caller.quiet()
}
