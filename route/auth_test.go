package route

import (
	"strings"
	"sync"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// secretAuth is a ticket-like authenticator for the tests: it challenges
// with a nonce and accepts "secret-<authid>".
type secretAuth struct{ gate chan struct{} }

func (a *secretAuth) Method() string { return "ticket" }

func (a *secretAuth) Challenge(req *AuthRequest) (map[string]any, any, *Identity, error) {
	if req.AuthID == "" {
		return nil, nil, nil, &AuthError{URI: proto.URINoSuchPrincipal, Message: "authid required"}
	}
	return map[string]any{"nonce": "n1"}, req.AuthID, nil, nil
}

func (a *secretAuth) Authenticate(req *AuthRequest, state any, sig string, extra map[string]any) (*Identity, error) {
	if a.gate != nil {
		<-a.gate // held until the test releases it
	}
	if sig != "secret-"+state.(string) {
		return nil, &AuthError{URI: proto.URIAuthenticationFailed, Message: "wrong ticket"}
	}
	return &Identity{AuthID: req.AuthID, AuthRole: "user", AuthProvider: "test", AuthExtra: map[string]any{"x": 1}}, nil
}

type roleAuthz map[string][]string // role → allowed "action:uri-prefix"

func (z roleAuthz) Authorize(role string, a Action, uri string) bool {
	for _, g := range z[role] {
		act, prefix, _ := strings.Cut(g, ":")
		if act == a.String() && strings.HasPrefix(uri, prefix) {
			return true
		}
	}
	return false
}

func authEnv(t *testing.T) *env {
	return newEnv(t, 2, func(c *Config) {
		c.Realms = []RealmConfig{{
			Name:           "secure",
			Authenticators: []Authenticator{&secretAuth{}},
			Authorizer:     roleAuthz{"user": {"call:com.ok", "register:com.ok", "subscribe:com.", "publish:com.pub"}},
		}}
	})
}

func TestChallengeAuthentication(t *testing.T) {
	e := authEnv(t)
	c := e.connect(proto.JSON)
	c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"wampcra", "ticket"}, "authid": "dev1"})
	ch := c.expect(proto.CodeChallenge)
	if string(ch.URI) != "ticket" {
		t.Fatalf("CHALLENGE method %s", ch.URI)
	}
	if d, _ := proto.DecodeValue(ch.Dict); d.(map[string]any)["nonce"] != "n1" {
		t.Fatalf("CHALLENGE extra %v", d)
	}
	c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("secret-dev1"), Dict: c.opts(nil)})
	w := c.expect(proto.CodeWelcome)
	d, _ := proto.DecodeValue(w.Dict)
	dm := d.(map[string]any)
	if dm["authid"] != "dev1" || dm["authrole"] != "user" || dm["authmethod"] != "ticket" || dm["authprovider"] != "test" {
		t.Fatalf("WELCOME %v", dm)
	}
	if ex, _ := dm["authextra"].(map[string]any); ex["x"] != int64(1) {
		t.Fatalf("authextra %v", dm["authextra"])
	}
}

func TestAuthenticationFailures(t *testing.T) {
	e := authEnv(t)
	c := e.connect(proto.MsgPack)
	c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "dev1"})
	c.expect(proto.CodeChallenge)
	c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("wrong"), Dict: c.opts(nil)})
	if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URIAuthenticationFailed || m.Opt.String(proto.KeyMessage) != "wrong ticket" {
		t.Fatalf("ABORT %s %q", m.URI, m.Opt.String(proto.KeyMessage))
	}
	c = e.connect(proto.JSON)
	c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}})
	if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URINoSuchPrincipal {
		t.Fatalf("ABORT %s", m.URI)
	}
	c = e.connect(proto.JSON)
	c.hello("secure", allFeatures, nil) // anonymous not allowed here
	if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URINoMatchingAuthMethod {
		t.Fatalf("ABORT %s", m.URI)
	}
	// A message other than AUTHENTICATE after CHALLENGE is a violation.
	c = e.connect(proto.JSON)
	c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "x"})
	c.expect(proto.CodeChallenge)
	c.call("com.ok", nil, nil, nil)
	if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URIProtocolViolation {
		t.Fatalf("ABORT %s", m.URI)
	}
}

func TestAuthorization(t *testing.T) {
	e := authEnv(t)
	join := func() *tc {
		c := e.connect(proto.JSON)
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "u"})
		c.expect(proto.CodeChallenge)
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("secret-u"), Dict: c.opts(nil)})
		c.id = c.expect(proto.CodeWelcome).ID
		return c
	}
	a, b := join(), join()
	a.register("com.ok.proc", nil)
	req := a.nextReq()
	a.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: a.opts(nil), URI: []byte("com.no.proc")})
	a.expectError(proto.CodeRegister, req, proto.URINotAuthorized)
	b.call("com.ok.proc", nil, nil, nil)
	inv := a.expect(proto.CodeInvocation)
	a.yield(inv.Request, nil, nil)
	b.expect(proto.CodeResult)
	req = b.call("org.other", nil, nil, nil)
	b.expectError(proto.CodeCall, req, proto.URINotAuthorized)
	req = b.call("wamp.session.count", nil, nil, nil)
	b.expectError(proto.CodeCall, req, proto.URINotAuthorized)
	a.subscribe("com.pub.x", nil)
	b.publish("com.pubx", map[string]any{"acknowledge": true}, nil, nil)
	b.expect(proto.CodePublished)
	req = b.publish("org.x", map[string]any{"acknowledge": true}, nil, nil)
	b.expectError(proto.CodePublish, req, proto.URINotAuthorized)
	req = b.nextReq()
	b.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: b.opts(nil), URI: []byte("org.x")})
	b.expectError(proto.CodeSubscribe, req, proto.URINotAuthorized)
	// The session stays up after a denial.
	b.register("com.ok.second", nil)
}

// Authentications run on the worker pool and do not block a shard: while
// every worker is stuck in Authenticate, another session on the same shard
// completes a call.
func TestAuthenticationDoesNotBlockShard(t *testing.T) {
	gate := make(chan struct{})
	e := newEnv(t, 1, func(c *Config) {
		c.AuthWorkers = 2
		c.Realms = []RealmConfig{{Name: "realm1", Anonymous: true, Authenticators: []Authenticator{&secretAuth{gate: gate}}}}
	})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // never leave workers stuck, even on failure
	busy := e.join(proto.JSON)
	busy.register("com.echo", nil)
	var joining []*tc
	for i := 0; i < 2; i++ { // one per worker: both end up held in Authenticate
		c := e.connect(proto.JSON)
		c.hello("realm1", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "a"})
		c.expect(proto.CodeChallenge)
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("secret-a"), Dict: c.opts(nil)})
		joining = append(joining, c)
	}
	caller := e.join(proto.JSON)
	req := caller.call("com.echo", nil, nil, nil)
	inv := busy.expect(proto.CodeInvocation)
	busy.yield(inv.Request, nil, nil)
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatal("wrong result")
	}
	for _, c := range joining {
		if len(c.peer.in) != 0 {
			t.Fatal("a session was welcomed while its authentication was held")
		}
	}
	release()
	for _, c := range joining {
		c.expect(proto.CodeWelcome)
	}
}
