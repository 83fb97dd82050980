package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

func TestJoinAnonymous(t *testing.T) {
	p := newPeer(t)
	cfg := Config{URL: p.url("ws"), Realm: "realm1", AuthRole: "device", DialTimeout: wait}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	eq(t, "serializer", c.ser, proto.JSON)
	h := c.welcome(4242)
	s, err := a.wait(t)
	noErr(t, "Dial", err)
	t.Cleanup(func() { closeSession(t, s, c) })

	eq(t, "realm", string(h.URI), "realm1")
	d := c.dict(h)
	eq(t, "authmethods", d["authmethods"], any([]any{"anonymous"}))
	eq(t, "authrole", d["authrole"], any("device"))
	if _, ok := d["authid"]; ok {
		t.Fatal("authid sent although Config.AuthID is empty")
	}
	roles := d["roles"].(map[string]any)
	want := map[string][]string{
		"caller": {"progressive_call_results", "call_canceling", "call_timeout", "caller_identification", "progressive_call_invocations", "payload_passthru_mode"},
		"callee": {"progressive_call_results", "call_canceling", "call_timeout", "caller_identification",
			"pattern_based_registration", "shared_registration", "progressive_call_invocations", "registration_revocation", "payload_passthru_mode"},
		"publisher":  {"publisher_exclusion", "publisher_identification", "subscriber_blackwhite_listing", "payload_passthru_mode"},
		"subscriber": {"pattern_based_subscription", "publisher_identification", "payload_passthru_mode", "subscription_revocation"},
	}
	eq(t, "number of roles", len(roles), len(want))
	for role, feats := range want {
		f := roles[role].(map[string]any)["features"].(map[string]any)
		eq(t, role+" feature count", len(f), len(feats))
		for _, name := range feats {
			eq(t, role+"."+name, f[name], any(true))
		}
	}
	eq(t, "ID", s.ID(), uint64(4242))
	eq(t, "Details authrole", s.Details()["authrole"], any("anonymous"))
}

func TestJoinChallenge(t *testing.T) {
	p := newPeer(t)
	var gotMethod string
	var gotExtra map[string]any
	cfg := Config{
		URL: p.url("rs"), Realm: "realm1", Serializer: proto.MsgPack, DialTimeout: wait,
		AuthID: "alice", AuthMethods: []string{"ticket", "wampcra"}, AuthExtra: map[string]any{"device": "d1"},
		OnChallenge: func(method string, extra map[string]any) (string, map[string]any, error) {
			gotMethod, gotExtra = method, extra
			return "s3cret", map[string]any{"nonce": "n1"}, nil
		},
	}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	eq(t, "serializer", c.ser, proto.MsgPack)
	h := c.expect(proto.CodeHello)
	d := c.dict(h)
	eq(t, "authid", d["authid"], any("alice"))
	eq(t, "authmethods", d["authmethods"], any([]any{"ticket", "wampcra"}))
	eq(t, "authextra", d["authextra"], any(map[string]any{"device": "d1"}))

	ch := &proto.Message{Type: proto.CodeChallenge, URI: []byte("ticket"), Dict: c.raw(map[string]any{"challenge": "x"})}
	c.send(ch)
	auth := c.expect(proto.CodeAuthenticate)
	eq(t, "signature", string(auth.URI), "s3cret")
	eq(t, "authenticate extra", c.dict(auth), map[string]any{"nonce": "n1"})
	w := &proto.Message{Type: proto.CodeWelcome, ID: 9, Dict: c.raw(map[string]any{"authid": "alice", "authrole": "admin", "authmethod": "ticket"})}
	c.send(w)
	s, err := a.wait(t)
	noErr(t, "Dial", err)
	t.Cleanup(func() { closeSession(t, s, c) })
	eq(t, "challenge method", gotMethod, "ticket")
	eq(t, "challenge extra", gotExtra, map[string]any{"challenge": "x"})
	eq(t, "authrole", s.Details()["authrole"], any("admin"))
}

func TestJoinAbort(t *testing.T) {
	p := newPeer(t)
	cfg := Config{URL: p.url("rs"), Realm: "nope", DialTimeout: wait}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	c.expect(proto.CodeHello)
	c.send(&proto.Message{Type: proto.CodeAbort, URI: []byte(proto.URINoSuchRealm), Dict: c.raw(map[string]any{"message": "no such realm"})})
	_, err := a.wait(t)
	e := wampErr(t, err, proto.URINoSuchRealm)
	eq(t, "error text", e.Error(), "wamp: wamp.error.no_such_realm: no such realm")
	c.expectEOF()
}

func TestJoinChallengeFails(t *testing.T) {
	p := newPeer(t)
	cfg := Config{
		URL: p.url("ws"), Realm: "realm1", DialTimeout: wait, AuthMethods: []string{"ticket"},
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) {
			return "", nil, errors.New("no ticket")
		},
	}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	c.expect(proto.CodeHello)
	c.send(&proto.Message{Type: proto.CodeChallenge, URI: []byte("ticket")})
	ab := c.expect(proto.CodeAbort)
	eq(t, "abort reason", string(ab.URI), proto.URIAuthenticationFailed)
	_, err := a.wait(t)
	if err == nil || !strings.Contains(err.Error(), "no ticket") {
		t.Fatalf("Dial error = %v, want the OnChallenge error", err)
	}
}

func TestJoinTimeout(t *testing.T) {
	p := newPeer(t)
	// The HELLO must be out before the timeout (1 s: 200 ms was tight for
	// the connect and handshake on a loaded machine).
	cfg := Config{URL: p.url("rs"), Realm: "realm1", DialTimeout: time.Second}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	c.expect(proto.CodeHello) // and never answer
	_, err := a.wait(t)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial error = %v, want a deadline", err)
	}
}

// configErrors are Configs that Dial refuses before dialing.
var configErrors = []struct {
	name string
	cfg  Config
	want string
}{
	{
		name: "no realm",
		cfg:  Config{URL: "ws://127.0.0.1:1/ws"},
		want: "Realm is empty",
	},
	{
		name: "bad scheme",
		cfg:  Config{URL: "http://127.0.0.1:1/", Realm: "r"},
		want: "scheme must be",
	},
	{
		name: "rawsocket without port",
		cfg:  Config{URL: "rs://127.0.0.1", Realm: "r"},
		want: "host:port",
	},
	{
		name: "bad serializer",
		cfg:  Config{URL: "rs://127.0.0.1:1", Realm: "r", Serializer: 9},
		want: "Serializer",
	},
}

func TestDialConfigErrors(t *testing.T) {
	for _, tc := range configErrors {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Dial(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Dial error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// Connect returns a Config that Dial refuses at once, rather than dialing
// again forever (with a context without deadline it never returned), also
// when the bad URL is not the first.
func TestConnectConfigErrors(t *testing.T) {
	p := newPeer(t)
	rc := ReconnectConfig{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	for _, tc := range configErrors {
		t.Run(tc.name, func(t *testing.T) {
			a := goDo(func() (*Client, error) { return Connect(context.Background(), tc.cfg, rc) })
			_, err := a.wait(t)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Connect error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("second URL", func(t *testing.T) {
		rc := rc
		rc.URLs = []string{"http://127.0.0.1:1/"}
		a := goDo(func() (*Client, error) {
			return Connect(context.Background(), Config{URL: p.url("rs"), Realm: "r"}, rc)
		})
		_, err := a.wait(t)
		if err == nil || !strings.Contains(err.Error(), "scheme must be") {
			t.Fatalf("Connect error = %v, want the second URL's", err)
		}
	})
}

func TestRawSocketHandshakeRefused(t *testing.T) {
	p := newPeer(t)
	p.rsReply = func([4]byte) [4]byte { return [4]byte{rsMagic, 1 << 4, 0, 0} }
	cfg := Config{URL: p.url("tcp"), Realm: "realm1", Serializer: proto.CBOR, DialTimeout: wait}
	_, err := Dial(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "serializer unsupported") {
		t.Fatalf("Dial error = %v, want the handshake refusal", err)
	}
}

func TestRawSocketExponent(t *testing.T) {
	cases := []struct {
		max   int
		l     byte
		limit int
	}{
		{max: 1, l: 0, limit: 512},
		{max: 512, l: 0, limit: 512},
		{max: 1000, l: 0, limit: 512},
		{max: 1024, l: 1, limit: 1024},
		{max: 16 << 20, l: 15, limit: 16 << 20},
		{max: 1 << 30, l: 15, limit: 16 << 20},
	}
	for _, tc := range cases {
		l, limit := rawSocketExponent(tc.max)
		if l != tc.l || limit != tc.limit {
			t.Errorf("rawSocketExponent(%d) = %d, %d; want %d, %d", tc.max, l, limit, tc.l, tc.limit)
		}
	}
}

// A CHALLENGE for an authmethod the client did not offer in HELLO (a
// hostile router, or one on the path of a ws:// connection, asking a
// client that offered wampcra for a ticket: its password in clear) is
// refused without calling OnChallenge: an OnChallenge that answers every
// challenge with the user's secret, as many do, would give it away.
func TestJoinChallengeForMethodNotOffered(t *testing.T) {
	p := newPeer(t)
	var asked []string
	cfg := Config{
		URL: p.url("rs"), Realm: "realm1", DialTimeout: wait,
		AuthID: "alice", AuthMethods: []string{"wampcra", "cryptosign"},
		OnChallenge: func(method string, extra map[string]any) (string, map[string]any, error) {
			asked = append(asked, method)
			return "alice-password", nil, nil
		},
	}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	c.expect(proto.CodeHello)
	c.send(&proto.Message{Type: proto.CodeChallenge, URI: []byte("ticket"), Dict: c.raw(map[string]any{})})
	m := c.recv()
	if m.Type == proto.CodeAuthenticate {
		t.Errorf("the client answered a ticket CHALLENGE it did not offer with AUTHENTICATE %q", m.URI)
		c.send(&proto.Message{Type: proto.CodeAbort, URI: []byte(proto.URIAuthenticationFailed)})
	} else {
		eq(t, "answer", m.Type, proto.CodeAbort)
		eq(t, "abort reason", string(m.URI), proto.URIProtocolViolation)
	}
	_, err := a.wait(t)
	if err == nil {
		t.Fatal("Dial succeeded")
	}
	if len(asked) > 0 {
		t.Errorf("OnChallenge was asked for %v", asked)
	}
	t.Logf("Dial: %v", err)
}
