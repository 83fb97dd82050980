package route

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// gateAuthz allows everything. Once armed, its Authorize of a PUBLISH to
// com.app.gate, which only a reload's re-check of the retained events
// makes, blocks until released: it holds the re-check's walk at that
// event, wherever the walk runs.
type gateAuthz struct {
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func (g *gateAuthz) Authorize(_ string, a Action, uri string) bool {
	if a == ActionPublish && uri == "com.app.gate" && g.armed.CompareAndSwap(true, false) {
		close(g.reached)
		<-g.release
	}
	return true
}

// A reload re-checked the retained events of every realm in one turn of
// an event loop (the last shard to re-check its sessions ran
// reauthRetained inline), with no budget: a realm's 65,536 retained topics
// (four anonymous publishers' shares at the default, one backend's with
// its share raised) held that loop for 20-120 ms at every reload, one that
// changed nothing included, and a thousand realms' for as many times
// longer; the calls and events of every session on the loop waited. The
// walk now runs off the event loops (it reads the realm under its lock
// only to copy the list, as before); the reload still completes once it
// is done. Here the walk is held at one event, and a call between two
// sessions of the only loop must still go through.
func TestReloadRetainedRecheckOffTheLoop(t *testing.T) {
	gate := &gateAuthz{reached: make(chan struct{}), release: make(chan struct{})}
	release := sync.OnceFunc(func() { close(gate.release) })
	t.Cleanup(release)
	realm := RealmConfig{Name: "realm1", Anonymous: true, Authorizer: gate}
	e := newEnv(t, 1, func(c *Config) { c.Realms = []RealmConfig{realm} })
	pub := e.join(proto.JSON)
	req := pub.publish("com.app.gate", map[string]any{"retain": true, "acknowledge": true}, []any{"kept"}, nil)
	if m := pub.expect(proto.CodePublished); m.Request != req {
		t.Fatalf("PUBLISHED for %d", m.Request)
	}
	callee := e.join(proto.JSON)
	callee.register("com.app.ping", nil)
	caller := e.join(proto.JSON)

	gate.armed.Store(true)
	reloaded := make(chan error, 1)
	go func() { reloaded <- e.r.Reload([]RealmConfig{realm}) }()
	select {
	case <-gate.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the reload's re-check of the retained events did not come to the retained event")
	}
	// The walk is held: the loop must go on serving its sessions.
	call := caller.nextReq()
	caller.sendAsync(&proto.Message{Type: proto.CodeCall, Request: call, Dict: caller.opts(nil), URI: []byte("com.app.ping")})
	select {
	case m := <-callee.peer.in:
		if m.Type != proto.CodeInvocation {
			t.Fatalf("callee got %v, want INVOCATION", m.Type)
		}
		callee.yield(m.Request, nil, nil)
	case <-time.After(2 * time.Second):
		release()
		t.Fatal("a call was not delivered within 2 s while the reload re-checked the retained events: the re-check holds the event loop")
	}
	if m := caller.expect(proto.CodeResult); m.Request != call {
		t.Fatalf("RESULT for %d, want %d", m.Request, call)
	}
	select {
	case err := <-reloaded:
		t.Fatalf("Reload returned (%v) before the retained events were re-checked", err)
	default:
	}
	release()
	select {
	case err := <-reloaded:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Reload did not return once the retained events were re-checked")
	}
	// Allowed: still retained.
	late := e.join(proto.JSON)
	sid := late.subscribe("com.app.gate", map[string]any{"get_retained": true})
	if m := late.expect(proto.CodeEvent); m.ID != sid || !m.Opt.Bool(proto.KeyRetained, false) {
		t.Fatalf("EVENT for %d retained=%v, want the retained event for %d", m.ID, m.Opt.Bool(proto.KeyRetained, false), sid)
	}
}

// A retained walk that outlasts reloadWait is named as such in the
// warning: the event loops had re-checked their sessions.
func TestReloadRetainedRecheckWaitWarning(t *testing.T) {
	defer func(d time.Duration) { reloadWait = d }(reloadWait)
	reloadWait = 200 * time.Millisecond
	gate := &gateAuthz{reached: make(chan struct{}), release: make(chan struct{})}
	release := sync.OnceFunc(func() { close(gate.release) })
	t.Cleanup(release)
	logs := &lockedBuf{}
	realm := RealmConfig{Name: "realm1", Anonymous: true, Authorizer: gate}
	e := newEnv(t, 2, func(c *Config) {
		c.Realms = []RealmConfig{realm}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	pub := e.join(proto.JSON)
	pub.publish("com.app.gate", map[string]any{"retain": true, "acknowledge": true}, []any{"kept"}, nil)
	pub.expect(proto.CodePublished)
	gate.armed.Store(true)
	if err := e.r.Reload([]RealmConfig{realm}); err != nil {
		t.Fatal(err)
	}
	<-gate.reached
	if l := logs.String(); !strings.Contains(l, "the retained events have not all been re-checked") || strings.Contains(l, "event loops have not") {
		t.Fatalf("warning: %s", l)
	}
}
