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
	callLookedUpBeforeForceReregister(t, nil, nil, nil)
}

// The call of TestCallLookedUpBeforeForceReregisterReachesNewCallee,
// which its caller did not ask disclosed, made for a callee that asked
// disclose_caller and taken over by one that did not: the new callee was
// told the caller's identity (the reroute kept the disclosure the first
// callee had), which neither the caller nor it asked. The caller is
// disclosed to the new callee as to any callee: asked by the caller, or
// by the callee that gets the call.
func TestCallLookedUpBeforeForceReregisterDisclosure(t *testing.T) {
	for _, tc := range []struct {
		name          string
		old, new, opt map[string]any
		disclosed     bool
	}{
		{"first callee asked", map[string]any{"disclose_caller": true}, nil, nil, false},
		{"new callee asked", nil, map[string]any{"disclose_caller": true}, nil, true},
		{"caller asked", nil, nil, map[string]any{"disclose_me": true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := callLookedUpBeforeForceReregister(t, tc.old, tc.new, tc.opt)
			if got := inv.Opt.Has(proto.KeyCaller); got != tc.disclosed {
				t.Fatalf("the new callee's INVOCATION %s: caller disclosed %v, want %v", describe(inv), got, tc.disclosed)
			}
		})
	}
}

// callLookedUpBeforeForceReregister makes a call (options opt) look up
// com.p, registered with options old, just before a force_reregister with
// options new takes it over, and returns the INVOCATION the new callee
// got, having checked that its RESULT reached the caller.
func callLookedUpBeforeForceReregister(t *testing.T, old, new, opt map[string]any) *proto.Message {
	t.Helper()
	e := newEnv(t, 2, nil)
	as := func(shard int, authid string) *tc {
		c := e.connectOn(shard, proto.JSON)
		c.hello("trusted", allFeatures, map[string]any{"authmethods": []any{"x-trust"}, "authid": authid})
		c.id = c.expect(proto.CodeWelcome).ID
		return c
	}
	first := as(0, "svc")
	first.register("com.p", old) // single, one callee
	caller := as(0, "caller")
	watcher := as(0, "watcher")
	watcher.subscribe("wamp.session.on_join", nil)
	next := as(0, "svc")
	e.sync()
	release := stallExec(t, e, 0)
	req := caller.nextReq()
	if opt == nil {
		opt = map[string]any{}
	}
	caller.sendAsync(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(opt), URI: []byte("com.p")})
	rreq := next.nextReq()
	force := map[string]any{"force_reregister": true}
	for k, v := range new {
		force[k] = v
	}
	next.sendAsync(&proto.Message{Type: proto.CodeRegister, Request: rreq, Dict: next.opts(force), URI: []byte("com.p")})
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
	var inv *proto.Message
	select {
	case inv = <-next.peer.in:
		if inv.Type != proto.CodeInvocation {
			t.Fatalf("the new callee got %s, want the INVOCATION", describe(inv))
		}
		next.yield(inv.Request, nil, []any{"new"})
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
	return inv
}
