package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A session at its bound of subscriptions (limits.subscriptions) that
// SUBSCRIBEs again to a topic it is already subscribed to adds nothing,
// and WAMP has the Broker answer SUBSCRIBED with the existing
// subscription's id; before, the router refused it (wamp.error.unavailable,
// "too many subscriptions"). Likewise a wildcard at the session's bound of
// wildcard subscriptions. The HTTP gateway, which shares one session
// between a principal's event streams, then refused a second stream on a
// topic the first one had.
func TestDuplicateSubscribeAtLimitRefused(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.MaxSubscriptions = 2; c.MaxWildcardSubscriptions = 1 })
	c := e.join(proto.JSON)
	id := c.subscribe("com.a", nil)
	wid := c.subscribe("com..x", map[string]any{"match": "wildcard"})
	for _, tc := range []struct {
		uri  string
		opts map[string]any
		want uint64
	}{{"com.a", nil, id}, {"com..x", map[string]any{"match": "wildcard"}, wid}} {
		req := c.nextReq()
		c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: c.opts(tc.opts), URI: []byte(tc.uri)})
		m := c.recv()
		if m.Type != proto.CodeSubscribed || m.ID != tc.want {
			t.Errorf("a second SUBSCRIBE to %s (already subscribed, at the bound) got %s; want SUBSCRIBED %d", tc.uri, describe(m), tc.want)
		}
	}
	// A new one is still refused at the bounds.
	req := c.nextReq()
	c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: c.opts(nil), URI: []byte("com.b")})
	c.expectError(proto.CodeSubscribe, req, proto.URIUnavailable)
	c.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: c.nextReq(), ID: id})
	c.expect(proto.CodeUnsubscribed)
	req = c.nextReq()
	c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: c.opts(map[string]any{"match": "wildcard"}), URI: []byte("com..y")})
	c.expectError(proto.CodeSubscribe, req, proto.URIUnavailable)
}

// A REGISTER that is refused wamp.error.procedure_already_exists below
// the session's bounds of registrations (limits.registrations, the
// wildcard one) is refused so at them too: the session's own procedure
// again, or one another session holds as single. Before, at the bound it
// got wamp.error.unavailable, "too many registrations", as if one more
// registration were the matter.
func TestDuplicateRegisterAtLimitAlreadyExists(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.MaxRegistrations = 2; c.MaxWildcardRegistrations = 1 })
	other := e.join(proto.JSON)
	other.register("com.single", nil)
	other.register("com.rr", map[string]any{"invoke": "roundrobin"})
	c := e.join(proto.JSON)
	c.register("com.p", nil)
	c.register("com..x", map[string]any{"match": "wildcard"})
	for _, tc := range []struct {
		uri  string
		opts map[string]any
		want string
	}{
		{"com.p", nil, proto.URIProcedureAlreadyExists},
		{"com..x", map[string]any{"match": "wildcard"}, proto.URIProcedureAlreadyExists},
		{"com.single", nil, proto.URIProcedureAlreadyExists},
		{"com.rr", map[string]any{"invoke": "random"}, proto.URIProcedureExistsInvocationPolicyConflict},
	} {
		req := c.nextReq()
		c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(tc.opts), URI: []byte(tc.uri)})
		m := c.recv()
		if m.Type != proto.CodeError || m.URI == nil || string(m.URI) != tc.want {
			t.Errorf("REGISTER %s at the bound got %s; want ERROR %s", tc.uri, describe(m), tc.want)
		}
	}
	req := c.nextReq()
	c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(nil), URI: []byte("com.q")})
	c.expectError(proto.CodeRegister, req, proto.URIUnavailable)
}

// The same on a mesh, where a single registration goes through the mesh's
// claim store, and a SUBSCRIBE is announced to the other nodes: at the
// bounds, the session's single procedure again is refused
// procedure_already_exists and its topic again answered SUBSCRIBED.
func TestMeshDuplicateAtLimit(t *testing.T) {
	_, es := newMemMesh(t, 2, 1, func(c *Config) { c.MaxRegistrations = 1; c.MaxSubscriptions = 1 })
	c := es[0].join(proto.JSON)
	c.register("com.p", map[string]any{"invoke": "single"})
	id := c.subscribe("com.t", nil)
	req := c.nextReq()
	c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(map[string]any{"invoke": "single"}), URI: []byte("com.p")})
	c.expectError(proto.CodeRegister, req, proto.URIProcedureAlreadyExists)
	req = c.nextReq()
	c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: c.opts(nil), URI: []byte("com.t")})
	if m := c.recv(); m.Type != proto.CodeSubscribed || m.ID != id {
		t.Fatalf("a second SUBSCRIBE to com.t at the bound got %s; want SUBSCRIBED %d", describe(m), id)
	}
}
