package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A call that looked up a registration just before a force_reregister
// took it over (its task waiting in the callee's loop's mailbox, here
// behind a meta event posted there) found its callee no longer holding
// the registration: the registration had one callee, so the call kept no
// copy to be rerouted, and the caller got wamp.error.no_available_callee
// though the new callee held the procedure. It goes to the registration
// that holds the procedure now, as a call rerouted after a
// force_reregister does (currentReg).
func TestCallLookedUpBeforeForceReregisterReachesNewCallee(t *testing.T) {
	e := newEnv(t, 2, nil)
	as := func(shard int, authid string) *tc {
		c := e.connectOn(shard, proto.JSON)
		c.hello("trusted", allFeatures, map[string]any{"authmethods": []any{"x-trust"}, "authid": authid})
		c.id = c.expect(proto.CodeWelcome).ID
		return c
	}
	old := as(0, "svc")
	old.register("com.p", nil) // single, one callee
	caller := as(0, "caller")
	watcher := as(0, "watcher")
	watcher.subscribe("wamp.session.on_join", nil)
	next := as(0, "svc")
	e.sync()
	release := stallExec(t, e, 0)
	req := caller.nextReq()
	caller.sendAsync(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(map[string]any{}), URI: []byte("com.p")})
	rreq := next.nextReq()
	next.sendAsync(&proto.Message{Type: proto.CodeRegister, Request: rreq, Dict: next.opts(map[string]any{"force_reregister": true}), URI: []byte("com.p")})
	// A session joining on loop 1 posts its on_join to loop 0, where the
	// CALL is read first: the call's task waits behind it.
	as(1, "joiner")
	deadline := time.Now().Add(5 * time.Second)
	for e.r.Shard(0).metaPosted.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no meta event posted to loop 0")
		}
		time.Sleep(time.Millisecond)
	}
	release()
	e.sync()
	if m := next.expect(proto.CodeRegistered); m.Request != rreq {
		t.Fatalf("force_reregister answered %s", describe(m))
	}
	select {
	case m := <-next.peer.in:
		if m.Type != proto.CodeInvocation {
			t.Fatalf("the new callee got %s, want the INVOCATION", describe(m))
		}
		next.yield(m.Request, nil, []any{"new"})
	case m := <-caller.peer.in:
		t.Fatalf("the call looked up just before the take-over: %s, want the new callee's RESULT", describe(m))
	case <-time.After(5 * time.Second):
		t.Fatal("neither the new callee's INVOCATION nor an answer to the caller")
	}
	for {
		m := caller.recv()
		if m.Type == proto.CodeEvent {
			continue
		}
		if m.Type != proto.CodeResult || m.Request != req {
			t.Fatalf("the call looked up just before the take-over: %s, want the new callee's RESULT", describe(m))
		}
		break
	}
}
