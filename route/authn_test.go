package route

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Autobahn's published WAMP-CRA vectors (autobahn/wamp/test/test_auth.py):
// derive_key and compute_wcs.
func TestCRAVectors(t *testing.T) {
	k, err := DeriveKey("L3L1YUE8Txlw", "salt123", 1000, 32)
	if err != nil || k != "qzcdsr9uu/L5hnss3kjNTRe490ETgA70ZBaB5rvnJ5Y=" {
		t.Fatalf("derive_key = %q, %v", k, err)
	}
	ch := []byte("[1, 2, 3]") // Python's json.dumps([1, 2, 3])
	if got := hmacB64([]byte("L3L1YUE8Txlw"), ch); got != "1njQtmmeYO41N5EWEzD2kAjjEKRZ5kPZt/TzpYXOzR0=" {
		t.Fatalf("compute_wcs = %q", got)
	}
}

// The WAMP specification's cryptosign test vectors without channel binding
// (§Cryptosign-based Authentication, "Test Vectors").
func TestCryptosignVectors(t *testing.T) {
	vectors := []struct{ priv, challenge, signature string }{
		{"4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510", "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
			"b32675b221f08593213737bef8240e7c15228b07028e19595294678c90d11c0cae80a357331bfc5cc9fb71081464e6e75013517c2cf067ad566a6b7b728e5d03ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
		{"d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd", "b26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
			"d4209ad10d5aff6bfbc009d7e924795de138a63515efc7afc6b01b7fe5201372190374886a70207b042294af5bd64ce725cd8dceb344e6d11c09d1aaaf4d660fb26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d"},
		{"6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b", "b05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
			"7beb282184baadd08f166f16dd683b39cab53816ed81e6955def951cb2ddad1ec184e206746fd82bda075af03711d3d5658fc84a76196b0fa8d1ebc92ef9f30bb05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2"},
	}
	for _, v := range vectors {
		seed, _ := hex.DecodeString(v.priv)
		key := ed25519.NewKeyFromSeed(seed)
		pub := key.Public().(ed25519.PublicKey)
		users, err := NewUsers([]*User{{AuthID: "dev", Roles: []string{"device"}, Keys: []ed25519.PublicKey{pub}}})
		if err != nil {
			t.Fatal(err)
		}
		a := &CryptosignAuth{Users: users}
		req := &AuthRequest{AuthExtra: map[string]any{"pubkey": hex.EncodeToString(pub)}}
		_, st, _, err := a.Challenge(req)
		if err != nil {
			t.Fatal(err)
		}
		st.(*csState).challenge, _ = hex.DecodeString(v.challenge) // the vector's challenge
		id, err := a.Authenticate(req, st, v.signature, nil)
		if err != nil || id.AuthID != "dev" || id.AuthRole != "device" {
			t.Fatalf("96-byte signature: %v %v", id, err)
		}
		if _, err := a.Authenticate(req, st, v.signature[:128], nil); err != nil {
			t.Fatalf("64-byte signature: %v", err)
		}
		bad := []byte(v.signature)
		bad[10] ^= 1
		if _, err := a.Authenticate(req, st, string(bad), nil); err == nil {
			t.Fatal("a corrupted signature was accepted")
		}
		if _, err := a.Authenticate(req, st, v.signature[:128]+strings.Repeat("0", 64), nil); err == nil {
			t.Fatal("a signature over another challenge was accepted")
		}
	}
}

func TestPasswordHash(t *testing.T) {
	p, err := HashPassword("s3cret", 1000)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParsePassword(p.String())
	if err != nil {
		t.Fatal(err)
	}
	if !q.Verify("s3cret") || q.Verify("s3cret ") || q.Verify("") {
		t.Fatal("Verify")
	}
	for _, bad := range []string{"s3cret", "pbkdf2-sha256$x$32$salt$key", "pbkdf2-sha256$1000$32$$AAAA", "pbkdf2-sha256$1000$32$salt$!!!"} {
		if _, err := ParsePassword(bad); err == nil {
			t.Fatalf("%q parsed", bad)
		}
	}
}

func TestRBACMostSpecificWins(t *testing.T) {
	_, err := NewRBAC([]Role{{Name: "user", Permissions: []Permission{
		{URI: "", Match: proto.MatchPrefix, Subscribe: true},
		{URI: "com.app.", Match: proto.MatchPrefix, Call: true, Subscribe: true},
		{URI: "com.app.admin.", Match: proto.MatchPrefix},                  // deny all under admin
		{URI: "com.app.admin.status", Match: proto.MatchExact, Call: true}, // but this one
		{URI: "com.app..reading", Match: proto.MatchWildcard, Publish: true, Subscribe: true},
		{URI: "com.app.", Match: proto.MatchPrefix, Call: true, Subscribe: true}, // duplicate
	}}})
	if err == nil || !strings.Contains(err.Error(), "two permissions") {
		t.Fatalf("duplicate permission not reported: %v", err)
	}
	z, err := NewRBAC([]Role{{Name: "user", Permissions: []Permission{
		{URI: "", Match: proto.MatchPrefix, Subscribe: true},
		{URI: "com.app.", Match: proto.MatchPrefix, Call: true, Subscribe: true},
		{URI: "com.app.admin.", Match: proto.MatchPrefix},
		{URI: "com.app.admin.status", Match: proto.MatchExact, Call: true},
		{URI: "org..reading", Match: proto.MatchWildcard, Publish: true},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		a    Action
		uri  string
		want bool
	}{
		{ActionCall, "com.app.x", true},
		{ActionCall, "com.app.admin.reboot", false},
		{ActionSubscribe, "com.app.admin.reboot", false},
		{ActionCall, "com.app.admin.status", true},
		{ActionSubscribe, "anything.else", true},
		{ActionCall, "anything.else", false},
		{ActionPublish, "org.s1.reading", true},
		{ActionPublish, "org.s1.other", false},
		{ActionRegister, "com.app.x", false},
	}
	for _, k := range cases {
		if got := z.Authorize("user", k.a, k.uri); got != k.want {
			t.Errorf("%s %s = %v, want %v", k.a, k.uri, got, k.want)
		}
	}
	if z.Authorize("nobody", ActionSubscribe, "x") {
		t.Error("unknown role granted")
	}
}

// secureEnv is a realm with all three authmethods and RBAC.
func secureEnv(t *testing.T, mutate func(*Config)) (*env, ed25519.PrivateKey) {
	pw, _ := HashPassword("pw-alice", 1000)
	seed := make([]byte, 32)
	seed[0] = 7
	key := ed25519.NewKeyFromSeed(seed)
	users, err := NewUsers([]*User{
		{AuthID: "alice", Roles: []string{"user", "ops"}, Password: pw},
		{AuthID: "bob", Roles: []string{"user"}, Secret: "bob-secret"},
		{AuthID: "dev1", Roles: []string{"device"}, Keys: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	z, err := NewRBAC([]Role{
		{Name: "user", Permissions: []Permission{{URI: "com.app.", Match: proto.MatchPrefix, Call: true, Register: true, Subscribe: true, Publish: true}}},
		{Name: "ops", Permissions: []Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Subscribe: true, DiscloseCaller: true}}},
		{Name: "device", Permissions: []Permission{{URI: "com.app..reading", Match: proto.MatchWildcard, Publish: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 2, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "secure", Users: users, Authorizer: z,
			Authenticators: []Authenticator{&TicketAuth{Users: users}, &CRAAuth{Users: users}, &CryptosignAuth{Users: users}}}}
		if mutate != nil {
			mutate(c)
		}
	})
	return e, key
}

// login runs HELLO → CHALLENGE → AUTHENTICATE with sign computing the
// signature from the CHALLENGE extra.
func (c *tc) login(details map[string]any, sign func(extra map[string]any) string) *proto.Message {
	c.t.Helper()
	c.hello("secure", allFeatures, details)
	m := c.recv()
	if m.Type != proto.CodeChallenge {
		return m
	}
	v, _ := proto.DecodeValue(m.Dict)
	extra, _ := v.(map[string]any)
	c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte(sign(extra)), Dict: c.opts(nil)})
	m = c.recv()
	if m.Type == proto.CodeWelcome {
		c.id = m.ID
	}
	return m
}

func welcomeDetails(t *testing.T, m *proto.Message) map[string]any {
	t.Helper()
	if m.Type != proto.CodeWelcome {
		t.Fatalf("got %v %s %q, want WELCOME", m.Type, m.URI, m.Opt.String(proto.KeyMessage))
	}
	v, _ := proto.DecodeValue(m.Dict)
	return v.(map[string]any)
}

func TestTicketWAMPCRACryptosignEndToEnd(t *testing.T) {
	e, key := secureEnv(t, nil)
	// ticket: the password is the ticket.
	c := e.connect(proto.JSON)
	d := welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "pw-alice" }))
	if d["authid"] != "alice" || d["authrole"] != "user" || d["authmethod"] != "ticket" || d["authprovider"] != "static" {
		t.Fatalf("ticket WELCOME %v", d)
	}
	// requested role
	c = e.connect(proto.JSON)
	d = welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice", "authrole": "ops"}, func(map[string]any) string { return "pw-alice" }))
	if d["authrole"] != "ops" {
		t.Fatalf("role %v", d["authrole"])
	}
	// salted WAMP-CRA: the client derives the key from the salt parameters.
	c = e.connect(proto.MsgPack)
	d = welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"wampcra"}, "authid": "alice"}, func(x map[string]any) string {
		k, _ := DeriveKey("pw-alice", x["salt"].(string), int(x["iterations"].(int64)), int(x["keylen"].(int64)))
		return hmacB64([]byte(k), []byte(x["challenge"].(string)))
	}))
	if d["authmethod"] != "wampcra" {
		t.Fatalf("wampcra %v", d)
	}
	// plain WAMP-CRA
	c = e.connect(proto.CBOR)
	welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"wampcra"}, "authid": "bob"}, func(x map[string]any) string {
		if _, salted := x["salt"]; salted {
			t.Error("plain secret challenged with a salt")
		}
		var ch map[string]any
		if err := json.Unmarshal([]byte(x["challenge"].(string)), &ch); err != nil || ch["authid"] != "bob" || ch["authmethod"] != "wampcra" || ch["nonce"] == "" {
			t.Errorf("challenge %v %v", ch, err)
		}
		return hmacB64([]byte("bob-secret"), []byte(x["challenge"].(string)))
	}))
	// cryptosign, no authid: identified by the key.
	c = e.connect(proto.JSON)
	d = welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"cryptosign"}, "authextra": map[string]any{"pubkey": hex.EncodeToString(key.Public().(ed25519.PublicKey))}},
		func(x map[string]any) string {
			ch, _ := hex.DecodeString(x["challenge"].(string))
			return hex.EncodeToString(append(ed25519.Sign(key, ch), ch...))
		}))
	if d["authid"] != "dev1" || d["authrole"] != "device" || d["authmethod"] != "cryptosign" {
		t.Fatalf("cryptosign %v", d)
	}
}

func TestAuthenticationErrorsURIs(t *testing.T) {
	e, key := secureEnv(t, nil)
	abort := func(m *proto.Message, uri string) {
		t.Helper()
		if m.Type != proto.CodeAbort || string(m.URI) != uri {
			t.Fatalf("got %v %s %q, want ABORT %s", m.Type, m.URI, m.Opt.String(proto.KeyMessage), uri)
		}
	}
	c := e.connect(proto.JSON)
	abort(c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "wrong" }), proto.URIAuthenticationFailed)
	c = e.connect(proto.JSON)
	abort(c.login(map[string]any{"authmethods": []any{"wampcra"}, "authid": "mallory"}, func(x map[string]any) string {
		return hmacB64([]byte("whatever"), []byte(x["challenge"].(string)))
	}), proto.URIAuthenticationFailed)
	c = e.connect(proto.JSON)
	abort(c.login(map[string]any{"authmethods": []any{"wampcra"}}, nil), proto.URINoSuchPrincipal)
	c = e.connect(proto.JSON)
	abort(c.login(map[string]any{"authmethods": []any{"wampcra"}, "authid": "bob"}, func(x map[string]any) string {
		return hmacB64([]byte("not-the-secret"), []byte(x["challenge"].(string)))
	}), proto.URIAuthenticationFailed)
	c = e.connect(proto.JSON)
	abort(c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "bob", "authrole": "ops"}, func(map[string]any) string { return "x" }), proto.URIAuthenticationFailed)
	// A role the user may not take: told only to the user itself.
	c = e.connect(proto.JSON)
	abort(c.login(map[string]any{"authmethods": []any{"wampcra"}, "authid": "bob", "authrole": "ops"}, func(x map[string]any) string {
		return hmacB64([]byte("bob-secret"), []byte(x["challenge"].(string)))
	}), proto.URINoSuchRole)
	c = e.connect(proto.JSON)
	abort(c.login(map[string]any{"authmethods": []any{"wampcra"}, "authid": "bob", "authrole": "ops"}, func(x map[string]any) string {
		return hmacB64([]byte("not-the-secret"), []byte(x["challenge"].(string)))
	}), proto.URIAuthenticationFailed)
	other := ed25519.NewKeyFromSeed(make([]byte, 32))
	c = e.connect(proto.JSON)
	abort(c.login(map[string]any{"authmethods": []any{"cryptosign"}, "authextra": map[string]any{"pubkey": hex.EncodeToString(other.Public().(ed25519.PublicKey))}}, nil), proto.URINoSuchPrincipal)
	c = e.connect(proto.JSON)
	abort(c.login(map[string]any{"authmethods": []any{"cryptosign"}, "authid": "dev1", "authextra": map[string]any{"pubkey": hex.EncodeToString(key.Public().(ed25519.PublicKey))}},
		func(x map[string]any) string { // signed with the wrong key
			ch, _ := hex.DecodeString(x["challenge"].(string))
			return hex.EncodeToString(append(ed25519.Sign(other, ch), ch...))
		}), proto.URIAuthenticationFailed)
	c = e.connect(proto.JSON)
	abort(c.login(map[string]any{"authmethods": []any{"anonymous"}}, nil), proto.URINoMatchingAuthMethod)
}

func TestRBACDenialsKeepSessionUp(t *testing.T) {
	e, key := secureEnv(t, nil)
	alice := e.connect(proto.JSON)
	welcomeDetails(t, alice.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "pw-alice" }))
	dev := e.connect(proto.MsgPack)
	welcomeDetails(t, dev.login(map[string]any{"authmethods": []any{"cryptosign"}, "authextra": map[string]any{"pubkey": hex.EncodeToString(key.Public().(ed25519.PublicKey))}},
		func(x map[string]any) string {
			ch, _ := hex.DecodeString(x["challenge"].(string))
			return hex.EncodeToString(append(ed25519.Sign(key, ch), ch...))
		}))
	alice.subscribe("com.app.s1.reading", nil)
	dev.publish("com.app.s1.reading", map[string]any{"acknowledge": true}, []any{21.5}, nil)
	dev.expect(proto.CodePublished)
	alice.expect(proto.CodeEvent)
	req := dev.publish("com.app.s1.config", map[string]any{"acknowledge": true}, nil, nil)
	dev.expectError(proto.CodePublish, req, proto.URINotAuthorized)
	req = dev.call("com.app.x", nil, nil, nil)
	dev.expectError(proto.CodeCall, req, proto.URINotAuthorized)
	req = dev.nextReq()
	dev.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: dev.opts(nil), URI: []byte("com.app.s1.reading")})
	dev.expectError(proto.CodeSubscribe, req, proto.URINotAuthorized)
	// still up
	dev.publish("com.app.s2.reading", nil, []any{1}, nil)
	alice.quiet() // not subscribed to s2
	dev.publish("com.app.s1.reading", map[string]any{"acknowledge": true}, nil, nil)
	dev.expect(proto.CodePublished)
}

func TestDisclosureGrantedByRole(t *testing.T) {
	e, _ := secureEnv(t, nil)
	callee := e.connect(proto.JSON)
	welcomeDetails(t, callee.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "pw-alice" }))
	callee.register("com.app.p", nil)
	ops := e.connect(proto.JSON)
	welcomeDetails(t, ops.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice", "authrole": "ops"}, func(map[string]any) string { return "pw-alice" }))
	ops.call("com.app.p", nil, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	if inv.Opt.Uint(proto.KeyCaller) != ops.id || inv.Opt.String(proto.KeyCallerAuthRole) != "ops" {
		t.Fatalf("ops calls are disclosed by role: %d %q", inv.Opt.Uint(proto.KeyCaller), inv.Opt.String(proto.KeyCallerAuthRole))
	}
	user := e.connect(proto.JSON)
	welcomeDetails(t, user.login(map[string]any{"authmethods": []any{"wampcra"}, "authid": "bob"}, func(x map[string]any) string {
		return hmacB64([]byte("bob-secret"), []byte(x["challenge"].(string)))
	}))
	user.call("com.app.p", nil, nil, nil)
	if inv := callee.expect(proto.CodeInvocation); inv.Opt.Has(proto.KeyCaller) {
		t.Fatal("a user's call was disclosed without a grant")
	}
}

func TestFailedAuthenticationsRateLimited(t *testing.T) {
	e, _ := secureEnv(t, nil)
	wrong := func() *proto.Message {
		c := e.connectFrom(0, proto.JSON, "192.0.2.7:4242")
		return c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "nope" })
	}
	for i := 0; i < DefaultAuthDelayAfter; i++ {
		if m := wrong(); m.Type != proto.CodeAbort {
			t.Fatalf("attempt %d: %v", i, m.Type)
		}
	}
	// Past DelayAfter the ABORT waits for a timer.
	c := e.connectFrom(1, proto.JSON, "192.0.2.7:4243")
	c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
	c.expect(proto.CodeChallenge)
	c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("nope"), Dict: c.opts(nil)})
	c.quiet()
	if m := e.advanceUntil(c, time.Second); m.Type != proto.CodeAbort || string(m.URI) != proto.URIAuthenticationFailed {
		t.Fatalf("delayed ABORT %s", m.URI)
	}
	for i := DefaultAuthDelayAfter + 1; i < DefaultAuthBlockAfter; i++ {
		c := e.connectFrom(i%2, proto.JSON, "192.0.2.7:1")
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
		c.expect(proto.CodeChallenge)
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("nope"), Dict: c.opts(nil)})
		if m := e.advanceUntil(c, time.Second); m.Type != proto.CodeAbort {
			t.Fatalf("attempt %d: %v", i, m.Type)
		}
	}
	// Now blocked: even the right password is refused at HELLO.
	c = e.connectFrom(0, proto.JSON, "192.0.2.7:9")
	c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
	if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URIAuthenticationDenied {
		t.Fatalf("blocked: %s", m.URI)
	}
	// Another address is not affected.
	c = e.connect(proto.JSON)
	welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "pw-alice" }))
	var fails uint64
	for i := 0; i < e.r.Shards(); i++ {
		fails += e.r.Shard(i).Stats().AuthFailures.Load()
	}
	if fails != DefaultAuthBlockAfter {
		t.Fatalf("AuthFailures = %d, want %d", fails, DefaultAuthBlockAfter)
	}
	st := e.r.Stats()
	if st.AuthFailures[authMethodIndex("ticket")] != DefaultAuthBlockAfter || st.AuthDenied != 1 || st.AuthSuccesses[authMethodIndex("ticket")] != 1 {
		t.Fatalf("Stats: ticket failures %d, denied %d, ticket successes %d; want %d, 1, 1",
			st.AuthFailures[authMethodIndex("ticket")], st.AuthDenied, st.AuthSuccesses[authMethodIndex("ticket")], DefaultAuthBlockAfter)
	}
	e.advance(DefaultAuthLockout + time.Second)
}

func TestReloadReauthorizes(t *testing.T) {
	e, _ := secureEnv(t, nil)
	alice := e.connect(proto.JSON)
	welcomeDetails(t, alice.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "pw-alice" }))
	bob := e.connect(proto.JSON)
	welcomeDetails(t, bob.login(map[string]any{"authmethods": []any{"wampcra"}, "authid": "bob"}, func(x map[string]any) string {
		return hmacB64([]byte("bob-secret"), []byte(x["challenge"].(string)))
	}))
	bob.register("com.app.p", nil) // allowed now
	// New config: bob removed; role user may no longer register.
	old := e.r.Realm("secure").conf()
	users, _ := NewUsers([]*User{old.Users.Lookup("alice"), old.Users.Lookup("dev1")})
	z, _ := NewRBAC([]Role{{Name: "user", Permissions: []Permission{{URI: "com.app.", Match: proto.MatchPrefix, Call: true}}}})
	nc := *old
	nc.Users, nc.Authorizer = users, z
	nc.Authenticators = []Authenticator{&TicketAuth{Users: users}}
	if err := e.r.Reload([]RealmConfig{nc, {Name: "new.realm"}}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	if m := bob.expect(proto.CodeGoodbye); string(m.URI) != proto.CloseKilled || !strings.Contains(m.Opt.String(proto.KeyMessage), "bob was removed") {
		t.Fatalf("bob: %s %q", m.URI, m.Opt.String(proto.KeyMessage))
	}
	req := alice.nextReq()
	alice.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: alice.opts(nil), URI: []byte("com.app.q")})
	alice.expectError(proto.CodeRegister, req, proto.URINotAuthorized) // cache dropped, new grants apply
	// The new realm exists for new sessions.
	c := e.connect(proto.JSON)
	c.hello("new.realm", allFeatures, nil)
	c.expect(proto.CodeWelcome)
	// An invalid reload changes nothing.
	if err := e.r.Reload([]RealmConfig{{Name: "bad realm"}}); err == nil {
		t.Fatal("invalid reload accepted")
	}
	if e.r.Realm("secure") == nil {
		t.Fatal("failed reload removed a realm")
	}
}

// A pattern subscription or registration authorized for its pattern must
// not deliver what a more specific deny under it forbids.
func TestPatternsDoNotBypassDeny(t *testing.T) {
	pw, _ := HashPassword("pw", 1000)
	users, _ := NewUsers([]*User{{AuthID: "u", Roles: []string{"user"}, Password: pw}, {AuthID: "root", Roles: []string{"admin"}, Password: pw}})
	z, err := NewRBAC([]Role{
		{Name: "user", Permissions: []Permission{
			{URI: "app.", Match: proto.MatchPrefix, Call: true, Register: true, Subscribe: true, Publish: true},
			{URI: "app.secret.", Match: proto.MatchPrefix},
		}},
		{Name: "admin", Permissions: []Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Register: true, Subscribe: true, Publish: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 2, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "secure", Users: users, Authorizer: z, Authenticators: []Authenticator{&TicketAuth{Users: users}}}}
	})
	login := func(authid string) *tc {
		c := e.connect(proto.JSON)
		welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": authid}, func(map[string]any) string { return "pw" }))
		return c
	}
	u, root := login("u"), login("root")
	prefix := u.subscribe("app.", map[string]any{"match": "prefix"})
	u.subscribe("app..t", map[string]any{"match": "wildcard"})
	root.publish("app.secret.t", nil, []any{"secret"}, nil)
	root.publish("app.public.t", nil, []any{"public"}, nil)
	got := 0
	for i := 0; i < 2; i++ { // the prefix and the wildcard subscription match app.public.t
		ev := u.expect(proto.CodeEvent)
		if argsOf(ev)[0] != "public" {
			t.Fatalf("a denied topic's event reached the session through a pattern: %v (sub %d, prefix %d)", argsOf(ev), ev.ID, prefix)
		}
		got++
	}
	u.quiet()
	// Registration: the pattern registration's callee is not invoked for a
	// denied procedure; the caller gets not_authorized.
	u.register("app.", map[string]any{"match": "prefix"})
	req := root.call("app.secret.payroll", nil, nil, nil)
	root.expectError(proto.CodeCall, req, proto.URINotAuthorized)
	u.quiet()
	root.call("app.public.hello", nil, nil, nil)
	inv := u.expect(proto.CodeInvocation)
	u.yield(inv.Request, nil, nil)
	root.expect(proto.CodeResult)
}

// A refusal for an unknown principal spends what checking a wrong password
// of the realm's users costs: the decoy has the work factor most of their
// passwords have. It had the default factor whatever the users' hashes,
// so with hashes made with more iterations (edgewamp passwd -iterations)
// an unknown authid was refused several times faster than a known one,
// which told an attacker which authids exist.
func TestDecoyHasTheUsersWork(t *testing.T) {
	hash := func(it int) *Password {
		p, err := HashPassword("pw", it)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	u, err := NewUsers([]*User{
		{AuthID: "a", Roles: []string{"r"}, Password: hash(4000)},
		{AuthID: "b", Roles: []string{"r"}, Password: hash(4000)},
		{AuthID: "c", Roles: []string{"r"}, Password: hash(2000)},
		{AuthID: "d", Roles: []string{"r"}, Secret: "cra-secret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if u.decoy == nil || u.decoy.Iterations != 4000 {
		t.Fatalf("decoy %+v, want 4000 iterations (most users' work)", u.decoy)
	}
	if u.decoy.Verify("pw") || u.decoy.Verify("") {
		t.Fatal("the decoy matched a password")
	}
	// Default work (or no passwords): the shared default decoy.
	d, _ := NewUsers([]*User{{AuthID: "a", Roles: []string{"r"}, Password: hash(DefaultIterations)}})
	if d.decoy != nil {
		t.Fatalf("a realm at the default work got its own decoy %+v", d.decoy)
	}
	// The ticket authenticator spends it for an unknown authid.
	a := &TicketAuth{Users: u}
	if _, err := a.Authenticate(&AuthRequest{AuthID: "nobody"}, nil, "pw", nil); err == nil {
		t.Fatal("an unknown authid authenticated")
	}
}

// WAMP-CRA does not tell which authids exist: an authid that is not a CRA
// user gets a challenge shaped like a user's (salted, the users' work
// factor and key length, a salt that is the same on every attempt for the
// same authid and differs between authids, the users' usual role) and
// fails at AUTHENTICATE like a wrong secret. Before, it was refused at
// HELLO with no_such_principal, and a user with a role it may not take
// with no_such_role: both answered "does this authid exist?".
func TestCRAUnknownAuthIDLooksKnown(t *testing.T) {
	e, _ := secureEnv(t, nil)
	challenge := func(authid, role string) (map[string]any, map[string]any) {
		t.Helper()
		c := e.connect(proto.JSON)
		d := map[string]any{"authmethods": []any{"wampcra"}, "authid": authid}
		if role != "" {
			d["authrole"] = role
		}
		var extra map[string]any
		m := c.login(d, func(x map[string]any) string {
			extra = x
			return hmacB64([]byte("guess"), []byte(x["challenge"].(string)))
		})
		if extra == nil {
			t.Fatalf("%s: no CHALLENGE, got %v %s", authid, m.Type, m.URI)
		}
		if m.Type != proto.CodeAbort || string(m.URI) != proto.URIAuthenticationFailed {
			t.Fatalf("%s: got %v %s after a wrong signature, want ABORT %s", authid, m.Type, m.URI, proto.URIAuthenticationFailed)
		}
		var ch map[string]any
		if err := json.Unmarshal([]byte(extra["challenge"].(string)), &ch); err != nil {
			t.Fatal(err)
		}
		return extra, ch
	}
	// An unknown authid gets one of the users' shapes, alice's (salted)
	// or bob's (plain), picked for it (TestCRADecoyShapesAreTheUsers):
	// these are strangers that get alice's.
	salted := func(base string) string {
		t.Helper()
		for i := range 64 {
			id := fmt.Sprintf("%s%d", base, i)
			c := e.connect(proto.JSON)
			c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"wampcra"}, "authid": id})
			v, _ := proto.DecodeValue(c.expect(proto.CodeChallenge).Dict)
			c.drop()
			if _, ok := v.(map[string]any)["salt"]; ok {
				return id
			}
		}
		t.Fatalf("no salted challenge for 64 authids %s*", base)
		return ""
	}
	mallory, oscar := salted("mallory"), salted("oscar")
	alice, aliceCh := challenge("alice", "")
	m1, m1Ch := challenge(mallory, "")
	m2, _ := challenge(mallory, "")
	o, _ := challenge(oscar, "")
	for _, k := range []string{"salt", "keylen", "iterations"} {
		if _, ok := m1[k]; !ok {
			t.Fatalf("decoy challenge lacks %q (alice's has %v): %v", k, alice[k], m1)
		}
	}
	if m1["iterations"] != alice["iterations"] || m1["keylen"] != alice["keylen"] {
		t.Fatalf("decoy work %v/%v, the users' %v/%v", m1["iterations"], m1["keylen"], alice["iterations"], alice["keylen"])
	}
	if s := m1["salt"].(string); s != m2["salt"] || s == o["salt"] || len(s) != len(alice["salt"].(string)) {
		t.Fatalf("decoy salts: mallory %v then %v, oscar %v; alice's %v", m1["salt"], m2["salt"], o["salt"], alice["salt"])
	}
	for _, k := range []string{"authid", "authrole", "authmethod", "authprovider", "nonce", "timestamp", "session"} {
		if _, ok := m1Ch[k]; !ok {
			t.Fatalf("decoy challenge text lacks %q: %v", k, m1Ch)
		}
	}
	if m1Ch["authid"] != mallory || m1Ch["authrole"] != aliceCh["authrole"] {
		t.Fatalf("decoy challenge %v; alice's %v", m1Ch, aliceCh)
	}
	// A requested role is echoed, for a user (bob may not take ops) and a
	// stranger alike.
	_, bobCh := challenge("bob", "ops")
	_, strCh := challenge(mallory, "ops")
	if bobCh["authrole"] != "ops" || strCh["authrole"] != "ops" {
		t.Fatalf("roles in challenges: bob %v, mallory %v", bobCh["authrole"], strCh["authrole"])
	}
}

// README (Security, Authmethods): "a user asking for a role it may not
// take learns no_such_role only once its password or signature is right".
// Cryptosign told it at HELLO, before any signature (ABORT no_such_role
// where role device got a CHALLENGE): whoever knows a device's public key
// (public by nature) learned which roles it holds without its private
// key. It now answers with a CHALLENGE, then authentication_failed for a
// wrong signature and no_such_role for the right one, as WAMP-CRA does.
func TestCryptosignRoleNotToldBeforeSignature(t *testing.T) {
	e, key := secureEnv(t, nil)
	pub := hex.EncodeToString(key.Public().(ed25519.PublicKey))
	details := func(role string) map[string]any {
		return map[string]any{"authmethods": []any{"cryptosign"}, "authrole": role, "authextra": map[string]any{"pubkey": pub}}
	}
	probe := func(role string) *proto.Message {
		c := e.connect(proto.JSON)
		c.hello("secure", allFeatures, details(role))
		return c.recv()
	}
	held, notHeld := probe("device"), probe("ops")
	t.Logf("HELLO with dev1's public key and no private key: role device → %v %s; role ops → %v %s",
		held.Type, held.URI, notHeld.Type, notHeld.URI)
	if notHeld.Type != proto.CodeChallenge {
		t.Fatalf("asking for a role dev1 does not hold, without its private key: got %v %s (%q) at HELLO, want a CHALLENGE "+
			"(and authentication_failed for a wrong signature), as for role device (%v)", notHeld.Type, notHeld.URI,
			notHeld.Opt.String(proto.KeyMessage), held.Type)
	}
	sign := func(k ed25519.PrivateKey) func(map[string]any) string {
		return func(x map[string]any) string {
			ch, _ := hex.DecodeString(x["challenge"].(string))
			return hex.EncodeToString(append(ed25519.Sign(k, ch), ch...))
		}
	}
	for _, tt := range []struct {
		key  ed25519.PrivateKey
		want string
	}{{ed25519.NewKeyFromSeed(make([]byte, 32)), proto.URIAuthenticationFailed}, {key, proto.URINoSuchRole}} {
		c := e.connect(proto.JSON)
		if m := c.login(details("ops"), sign(tt.key)); m.Type != proto.CodeAbort || string(m.URI) != tt.want {
			t.Fatalf("role ops: got %v %s, want ABORT %s", m.Type, m.URI, tt.want)
		}
	}
}

// README (Authmethods): an unknown authid "with wampcra is challenged like
// a user (a salt that is the same on every attempt for that authid, the
// users' iterations and key length, their usual role)". The decoy always
// said keylen 32, whatever the users' hashes have (ParsePassword takes 16
// to 64): with users whose hashes have another key length (migrated from
// another router), one CHALLENGE told whether an authid exists (keylen
// 64 for carol, 32 for mallory). The decoy now has the key length most
// of the users' hashes have, as it has their iterations.
func TestCRADecoyKeyLength(t *testing.T) {
	mk := func(pw string) *Password {
		p := &Password{Iterations: 1000, KeyLen: 64, Salt: "c2FsdHNhbHRzYWx0c2FsdA"}
		k, err := DeriveKey(pw, p.Salt, p.Iterations, p.KeyLen)
		if err != nil {
			t.Fatal(err)
		}
		p.Key = k
		if _, err := ParsePassword(p.String()); err != nil {
			t.Fatal(err)
		}
		return p
	}
	users, err := NewUsers([]*User{{AuthID: "carol", Roles: []string{"user"}, Password: mk("a")}, {AuthID: "erin", Roles: []string{"user"}, Password: mk("b")}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 1, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "secure", Users: users, Authenticators: []Authenticator{&CRAAuth{Users: users}}}}
	})
	challenge := func(authid string) map[string]any {
		c := e.connect(proto.JSON)
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"wampcra"}, "authid": authid})
		v, _ := proto.DecodeValue(c.expect(proto.CodeChallenge).Dict)
		return v.(map[string]any)
	}
	known, unknown := challenge("carol"), challenge("mallory")
	t.Logf("keylen: user %v, unknown authid %v; iterations: %v, %v", known["keylen"], unknown["keylen"], known["iterations"], unknown["iterations"])
	if known["keylen"] != unknown["keylen"] {
		t.Fatalf("the CHALLENGE for an existing authid says keylen %v, for an unknown one %v: authids can be probed", known["keylen"], unknown["keylen"])
	}
}

// [Cryptosign]: HELLO.Details.authextra.channel_binding is a string naming
// the binding, or null. A client asking for one in another form (true, a
// number, a dictionary) was taken to ask for none: challenged without a
// binding and welcomed. The router binds to no channel, so such a HELLO
// is refused as a named binding is; null and an absent one are not.
func TestCryptosignChannelBindingNotAStringRefused(t *testing.T) {
	e, key := secureEnv(t, nil)
	pub := hex.EncodeToString(key.Public().(ed25519.PublicKey))
	sign := func(x map[string]any) string {
		ch, _ := hex.DecodeString(x["challenge"].(string))
		return hex.EncodeToString(ed25519.Sign(key, ch))
	}
	for _, cb := range []any{true, 1, map[string]any{"type": "tls-unique"}, []any{"tls-unique"}, "tls-unique"} {
		c := e.connect(proto.JSON)
		m := c.login(map[string]any{"authmethods": []any{"cryptosign"}, "authextra": map[string]any{"pubkey": pub, "channel_binding": cb}}, sign)
		if m.Type != proto.CodeAbort || string(m.URI) != proto.URIAuthenticationFailed || !strings.Contains(m.Opt.String(proto.KeyMessage), "channel binding") {
			t.Errorf("channel_binding %#v: got %v %s %q, want ABORT authentication_failed naming the channel binding", cb, m.Type, m.URI, m.Opt.String(proto.KeyMessage))
		}
	}
	for _, extra := range []map[string]any{{"pubkey": pub, "channel_binding": nil}, {"pubkey": pub}} {
		c := e.connect(proto.JSON)
		welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"cryptosign"}, "authextra": extra}, sign))
	}
}
