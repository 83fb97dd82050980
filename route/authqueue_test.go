package route

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// gateAuth is a ticket authenticator whose check of the signature "block"
// holds its worker until the gate opens; "right" passes, anything else
// fails.
type gateAuth struct {
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
	opened  sync.Once
}

func newGateAuth() *gateAuth {
	return &gateAuth{entered: make(chan struct{}), gate: make(chan struct{})}
}

func (a *gateAuth) open() { a.opened.Do(func() { close(a.gate) }) }

func (a *gateAuth) Method() string { return "ticket" }

func (a *gateAuth) Challenge(*AuthRequest) (map[string]any, any, *Identity, error) {
	return map[string]any{}, nil, nil, nil
}

func (a *gateAuth) Authenticate(req *AuthRequest, _ any, sig string, _ map[string]any) (*Identity, error) {
	switch sig {
	case "block":
		a.once.Do(func() { close(a.entered) })
		<-a.gate
	case "right":
		return &Identity{AuthID: req.AuthID, AuthRole: "user", AuthProvider: "test"}, nil
	}
	return nil, failAuth()
}

// The pool's queue of authentication work is bounded router-wide
// (Config.AuthQueue, 4,096 by default) and served by address in turn, but
// a login that found it full was refused ("router busy"), whoever held
// the queue: 41 addresses each with the 100 password checks the limiter
// lets an address have in flight (41 IPv6 /64s, a home customer's /56
// has 256) kept it full, and every other address's HELLO was refused for
// as long as they kept it so, however few jobs it had itself. Now a job
// of the address with the most queued gives way (its login ABORTed
// "router busy") to a login from an address with fewer.
func TestAuthQueueFullServesOtherAddresses(t *testing.T) {
	a := newGateAuth()
	e := newEnv(t, 2, func(c *Config) {
		c.AuthWorkers = 1
		c.AuthQueue = 8
		c.Realms = []RealmConfig{{Name: "secure", Authenticators: []Authenticator{a}}}
	})
	t.Cleanup(a.open) // before the router's Close, which waits for the worker
	open := func(remote, authid string) *tc {
		c := e.connectFrom(0, proto.JSON, remote)
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": authid})
		c.expect(proto.CodeChallenge)
		return c
	}
	// Four addresses with two logins each, and one whose check holds
	// the only worker; then the four queue a check each: the queue is
	// full.
	blocker := open("10.0.0.9:1", "b")
	var attackers []*tc
	for i := range 4 {
		for j := range 2 {
			attackers = append(attackers, open(fmt.Sprintf("10.0.0.%d:%d", i+1, j+1), fmt.Sprintf("u%d", j)))
		}
	}
	blocker.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("block"), Dict: blocker.opts(nil)})
	select {
	case <-a.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the blocking check did not start")
	}
	for _, c := range attackers {
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("wrong"), Dict: c.opts(nil)})
	}
	e.sync()
	busyBefore := e.r.Stats().AuthBusy

	// Another address's login.
	v := e.connectFrom(1, proto.JSON, "10.9.9.9:1")
	v.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "victim"})
	e.sync()
	a.open()
	m := v.recv()
	if m.Type != proto.CodeChallenge {
		t.Fatalf("a login from an address with no job queued, while 4 other addresses filled the queue with 2 each: %v %s %q, want CHALLENGE",
			m.Type, m.URI, m.Opt.String(proto.KeyMessage))
	}
	v.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("right"), Dict: v.opts(nil)})
	if m := v.recv(); m.Type != proto.CodeWelcome {
		t.Fatalf("victim: %v %s %q, want WELCOME", m.Type, m.URI, m.Opt.String(proto.KeyMessage))
	}
	// One attacker's check gave way; the others were checked.
	busy, failed := 0, 0
	for _, c := range attackers {
		m := c.recv()
		switch {
		case m.Type == proto.CodeAbort && string(m.URI) == proto.URIAuthenticationFailed && m.Opt.String(proto.KeyMessage) == errAuthBusy.Message:
			busy++
		case m.Type == proto.CodeAbort && string(m.URI) == proto.URIAuthenticationFailed:
			failed++
		default:
			t.Fatalf("attacker: %v %s %q", m.Type, m.URI, m.Opt.String(proto.KeyMessage))
		}
	}
	if busy != 1 || failed != 7 {
		t.Fatalf("of the 8 queued checks %d gave way and %d were checked, want 1 and 7", busy, failed)
	}
	if n := e.r.Stats().AuthBusy - busyBefore; n != 1 {
		t.Fatalf("AuthBusy counted %d, want 1", n)
	}

	// A full queue whose every address has one job: no address has more
	// than the newcomer's one, so the newcomer is refused, and counted.
	a2 := newGateAuth()
	e2 := newEnv(t, 1, func(c *Config) {
		c.AuthWorkers = 1
		c.AuthQueue = 2
		c.Realms = []RealmConfig{{Name: "secure", Authenticators: []Authenticator{a2}}}
	})
	t.Cleanup(a2.open)
	var held []*tc
	for i := range 3 {
		c := e2.connectFrom(0, proto.JSON, fmt.Sprintf("10.1.0.%d:1", i+1))
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "x"})
		c.expect(proto.CodeChallenge)
		held = append(held, c)
	}
	held[0].send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("block"), Dict: held[0].opts(nil)})
	<-a2.entered
	for _, c := range held[1:] {
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("wrong"), Dict: c.opts(nil)})
	}
	n := e2.connectFrom(0, proto.JSON, "10.1.9.9:1")
	n.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "x"})
	if m := n.recv(); m.Type != proto.CodeAbort || m.Opt.String(proto.KeyMessage) != errAuthBusy.Message {
		t.Fatalf("a login while the queue is full, one job per address: %v %s %q, want ABORT %q", m.Type, m.URI, m.Opt.String(proto.KeyMessage), errAuthBusy.Message)
	}
	if b := e2.r.Stats().AuthBusy; b != 1 {
		t.Fatalf("AuthBusy counted %d, want 1", b)
	}
}

// A login that reaches a router whose Close has stopped the pool is told
// the router is shutting down, not counted as refused for a full queue.
func TestAuthAfterCloseNotCountedBusy(t *testing.T) {
	e, _ := secureEnv(t, nil)
	e.r.Close()
	c := e.connect(proto.JSON)
	c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
	if m := c.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.CloseSystemShutdown {
		t.Fatalf("got %v %s %q, want ABORT %s", m.Type, m.URI, m.Opt.String(proto.KeyMessage), proto.CloseSystemShutdown)
	}
	if n := e.r.Stats().AuthBusy; n != 0 {
		t.Fatalf("AuthBusy %d after a login refused by a closed router", n)
	}
}
