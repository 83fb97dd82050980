package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

func TestJoinWelcome(t *testing.T) {
	for _, ser := range sers {
		t.Run(ser.String(), func(t *testing.T) {
			e := newEnv(t, 2, nil)
			c := e.connect(ser)
			c.hello("realm1", allFeatures, map[string]any{"authid": "dev-7"})
			w := c.expect(proto.CodeWelcome)
			if w.ID < 1 || w.ID > proto.MaxID {
				t.Fatalf("session id %d out of [1, 2^53]", w.ID)
			}
			d, err := proto.DecodeValue(w.Dict)
			if err != nil {
				t.Fatal(err)
			}
			dm := d.(map[string]any)
			if id, _ := dm["authid"].(string); id == "" || id == "dev-7" || dm["authrole"] != "anonymous" || dm["authmethod"] != "anonymous" {
				t.Fatalf("WELCOME details %v", dm)
			}
			roles := dm["roles"].(map[string]any)
			dealer := roles["dealer"].(map[string]any)["features"].(map[string]any)
			for _, f := range []string{"progressive_call_results", "call_canceling", "call_timeout", "shared_registration", "pattern_based_registration", "registration_meta_api", "testament_meta_api"} {
				if dealer[f] != true {
					t.Errorf("dealer feature %s not announced", f)
				}
			}
			broker := roles["broker"].(map[string]any)["features"].(map[string]any)
			for _, f := range []string{"publisher_exclusion", "publisher_identification", "subscriber_blackwhite_listing", "pattern_based_subscription", "event_retention", "subscription_meta_api"} {
				if broker[f] != true {
					t.Errorf("broker feature %s not announced", f)
				}
			}
			if _, ok := broker["event_history"]; ok {
				t.Error("event_history is not implemented but announced")
			}
			c.goodbye()
		})
	}
}

func TestSessionIDsUnique(t *testing.T) {
	e := newEnv(t, 2, nil)
	seen := map[uint64]bool{}
	for i := 0; i < 200; i++ {
		c := e.join(proto.JSON)
		if seen[c.id] {
			t.Fatalf("duplicate session id %d", c.id)
		}
		seen[c.id] = true
	}
	if n := e.r.SessionCount(); n != 200 {
		t.Fatalf("SessionCount = %d", n)
	}
}

func TestAbortReasons(t *testing.T) {
	cases := []struct {
		name    string
		run     func(c *tc)
		reason  string
		message string
	}{
		{"no such realm", func(c *tc) { c.hello("nope", allFeatures, nil) }, proto.URINoSuchRealm, `no realm "nope"`},
		{"invalid realm", func(c *tc) { c.hello("bad realm", allFeatures, nil) }, proto.URIInvalidURI, ""},
		{"no roles", func(c *tc) {
			c.send(&proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: raw(c.t, c.peer.ser, map[string]any{})})
		}, proto.URIProtocolViolation, "HELLO.Details.roles is required"},
		{"call before hello", func(c *tc) { c.call("a.b", nil, nil, nil) }, proto.URIProtocolViolation, "expected HELLO, received CALL"},
		{"garbage", func(c *tc) { c.sendBytes([]byte("[1, \"realm1\"")) }, proto.URIProtocolViolation, "proto: truncated input"},
		{"unknown type", func(c *tc) { c.sendBytes([]byte(`[99, 1, {}]`)) }, proto.URIProtocolViolation, "proto: unknown message type"},
		{"bad option type", func(c *tc) {
			c.send(&proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: raw(c.t, c.peer.ser, map[string]any{"roles": "x"})})
		}, proto.URIProtocolViolation, "proto: HELLO.Details.roles must be a dictionary"},
		{"no matching authmethod", func(c *tc) { c.hello("realm1", allFeatures, map[string]any{"authmethods": []any{"ticket"}}) }, proto.URINoMatchingAuthMethod, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1, nil)
			c := e.connect(proto.JSON)
			tc.run(c)
			m := c.expect(proto.CodeAbort)
			if string(m.URI) != tc.reason {
				t.Fatalf("ABORT %s, want %s", m.URI, tc.reason)
			}
			if tc.message != "" && m.Opt.String(proto.KeyMessage) != tc.message {
				t.Fatalf("ABORT message %q, want %q", m.Opt.String(proto.KeyMessage), tc.message)
			}
			e.sync()
			if !c.peer.closed.Load() {
				t.Fatal("transport not closed after ABORT")
			}
			if n, want := e.r.Stats().ProtocolErrors, tc.reason == proto.URIProtocolViolation; (n == 1) != want || n > 1 {
				t.Fatalf("Router.Stats().ProtocolErrors = %d after ABORT %s", n, tc.reason)
			}
		})
	}
}

func TestProtocolViolationsEstablished(t *testing.T) {
	cases := []struct {
		name string
		run  func(c *tc)
		want string
	}{
		{"second hello", func(c *tc) { c.hello("realm1", allFeatures, nil) }, "received HELLO in an established session"},
		{"welcome from client", func(c *tc) { c.send(&proto.Message{Type: proto.CodeWelcome, ID: 1, Dict: c.opts(nil)}) }, "a router does not accept WELCOME"},
		{"request id zero", func(c *tc) {
			c.send(&proto.Message{Type: proto.CodeSubscribe, Request: 0, Dict: c.opts(nil), URI: []byte("a.b")})
		}, "SUBSCRIBE request id must be in [1, 2^53]"},
		// WAMP §IDs: request ids are in [1, 2^53] in every message that
		// carries one; the router's INVOCATION ids and a caller's CALL
		// ids never are 0, so a YIELD, an ERROR or a CANCEL naming 0 is
		// not a late reply to forget but a peer breaking the protocol.
		{"yield request id zero", func(c *tc) {
			c.send(&proto.Message{Type: proto.CodeYield, Request: 0, Dict: c.opts(nil)})
		}, "YIELD request id must be in [1, 2^53]"},
		{"error request id zero", func(c *tc) {
			c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: 0, Dict: c.opts(nil), URI: []byte("a.b")})
		}, "ERROR request id must be in [1, 2^53]"},
		{"cancel request id zero", func(c *tc) {
			c.send(&proto.Message{Type: proto.CodeCancel, Request: 0, Dict: c.opts(nil)})
		}, "CANCEL request id must be in [1, 2^53]"},
		{"error for call", func(c *tc) {
			c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: 1, Dict: c.opts(nil), URI: []byte("a.b")})
		}, "ERROR is only valid as a reply to INVOCATION"},
		{"progressive invocation without announcing", func(c *tc) {
			c.send(&proto.Message{Type: proto.CodeCall, Request: 1, Dict: c.opts(map[string]any{"progress": true}), URI: []byte("a.b")})
		}, "CALL.Options.progress requires the caller to announce progressive_call_invocations"},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, 1, nil)
			c := e.connect(proto.MsgPack)
			roles := allFeatures
			if k.name == "progressive invocation without announcing" {
				roles = map[string]any{"caller": map[string]any{}}
			}
			c.hello("realm1", roles, nil)
			c.id = c.expect(proto.CodeWelcome).ID
			other := e.join(proto.JSON)
			k.run(c)
			m := c.expect(proto.CodeAbort)
			if string(m.URI) != proto.URIProtocolViolation || m.Opt.String(proto.KeyMessage) != k.want {
				t.Fatalf("ABORT %s %q, want protocol_violation %q", m.URI, m.Opt.String(proto.KeyMessage), k.want)
			}
			// Another session is unaffected.
			other.register("com.x", nil)
		})
	}
}

func TestGoodbyeFromClientFreesState(t *testing.T) {
	e := newEnv(t, 2, nil)
	c := e.join(proto.JSON)
	c.register("com.p", nil)
	c.subscribe("com.t", nil)
	c.goodbye()
	e.sync()
	if !c.peer.closed.Load() {
		t.Fatal("transport not closed after GOODBYE")
	}
	rm := e.r.Realm("realm1")
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	if len(rm.members) != 0 || len(rm.regByID) != 0 || len(rm.subByID) != 0 {
		t.Fatalf("state left behind: members=%d regs=%d subs=%d", len(rm.members), len(rm.regByID), len(rm.subByID))
	}
	if e.r.SessionCount() != 0 {
		t.Fatalf("router still counts %d sessions", e.r.SessionCount())
	}
}

func TestHelloTimeout(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.HelloTimeout = 2 * time.Second })
	c := e.connect(proto.JSON)
	e.advance(time.Second)
	c.quiet()
	e.advance(1500 * time.Millisecond)
	m := c.expect(proto.CodeAbort)
	if string(m.URI) != proto.URIProtocolViolation {
		t.Fatalf("ABORT %s", m.URI)
	}
}

func TestRealmsIsolated(t *testing.T) {
	e := newEnv(t, 2, nil)
	a := e.join(proto.JSON)
	b := e.connect(proto.JSON)
	b.hello("realm2", allFeatures, nil)
	b.id = b.expect(proto.CodeWelcome).ID
	a.register("com.p", nil)
	a.subscribe("com.t", nil)
	req := b.call("com.p", nil, nil, nil)
	b.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
	b.publish("com.t", nil, []any{1}, nil)
	a.quiet()
	// The same procedure can be registered in both realms.
	b.register("com.p", nil)
}

func TestShutdownSaysGoodbye(t *testing.T) {
	e := newEnv(t, 2, func(c *Config) { c.GoodbyeTimeout = time.Second })
	a := e.join(proto.JSON)
	b := e.join(proto.CBOR)
	done := make(chan error)
	go func() { done <- e.r.Shutdown(t.Context()) }()
	for _, c := range []*tc{a, b} {
		m := c.expect(proto.CodeGoodbye)
		if string(m.URI) != proto.CloseSystemShutdown {
			t.Fatalf("GOODBYE %s", m.URI)
		}
		c.send(&proto.Message{Type: proto.CodeGoodbye, Dict: c.opts(nil), URI: []byte(proto.CloseGoodbyeAndOut)})
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	// New sessions are refused.
	c := e.connect(proto.JSON)
	m := c.expect(proto.CodeAbort)
	if string(m.URI) != proto.CloseSystemShutdown {
		t.Fatalf("ABORT %s", m.URI)
	}
}

func TestGoodbyeTimeoutClosesTransport(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.GoodbyeTimeout = time.Second })
	a := e.join(proto.JSON)
	killer := e.join(proto.JSON)
	killer.call("wamp.session.kill", nil, []any{a.id}, nil)
	killer.expect(proto.CodeResult)
	a.expect(proto.CodeGoodbye)
	e.sync()
	if a.peer.closed.Load() {
		t.Fatal("closed before the GOODBYE timeout")
	}
	e.advance(2 * time.Second)
	if !a.peer.closed.Load() {
		t.Fatal("transport still open after the GOODBYE timeout")
	}
}

// No session can grow router memory without bound: calls in flight,
// registrations and subscriptions are capped per session, and the session
// stays up when it hits a cap.
func TestPerSessionLimits(t *testing.T) {
	e := newEnv(t, 2, func(c *Config) { c.MaxPendingCalls, c.MaxRegistrations, c.MaxSubscriptions = 3, 2, 2 })
	callee, c := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.slow", nil)
	for i := 0; i < 3; i++ {
		c.call("com.slow", nil, nil, nil)
		callee.expect(proto.CodeInvocation)
	}
	req := c.call("com.slow", nil, nil, nil)
	c.expectError(proto.CodeCall, req, proto.URIUnavailable)
	callee.quiet()
	c.register("a.one", nil)
	c.register("a.two", nil)
	req = c.nextReq()
	c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(nil), URI: []byte("a.three")})
	c.expectError(proto.CodeRegister, req, proto.URIUnavailable)
	c.subscribe("t.one", nil)
	c.subscribe("t.two", nil)
	req = c.nextReq()
	c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: c.opts(nil), URI: []byte("t.three")})
	c.expectError(proto.CodeSubscribe, req, proto.URIUnavailable)
	c.goodbye()
}

// TestWelcomeAnnouncesImplementedFeatures pins WELCOME.Details.roles to
// exactly the features the router implements (WAMP: a router announces
// the features it supports, and a client uses only those): a flag added
// to routerRoles without being implemented, or implemented and dropped,
// fails here. Each is exercised by the test named beside it.
func TestWelcomeAnnouncesImplementedFeatures(t *testing.T) {
	want := map[string]map[string]string{
		"broker": {
			"publisher_identification":      "TestPublisherExclusionAndIdentification",
			"publisher_exclusion":           "TestPublisherExclusionAndIdentification",
			"subscriber_blackwhite_listing": "TestBlackWhiteListing",
			"pattern_based_subscription":    "TestPatternSubscriptions",
			"subscription_meta_api":         "TestSubscriptionMeta",
			"session_meta_api":              "TestSessionMetaProcedures",
			"event_retention":               "TestRetainedEvents",
			"payload_passthru_mode":         "TestPayloadPassthru",
			"subscription_revocation":       "TestRemoveSubscriber, TestReloadRevokesSubscriptions",
		},
		"dealer": {
			"progressive_call_results":     "TestProgressiveResults",
			"progressive_call_invocations": "TestProgressiveCallInvocations",
			"call_timeout":                 "TestCallTimeout",
			"call_canceling":               "TestCancelModes",
			"call_reroute":                 "TestRerouteByPolicy",
			"caller_identification":        "TestCallerIdentification",
			"pattern_based_registration":   "TestPatternRegistrations",
			"shared_registration":          "TestSharedRegistrationPolicies",
			"registration_meta_api":        "TestRegistrationMeta",
			"session_meta_api":             "TestSessionMetaProcedures",
			"testament_meta_api":           "TestTestament",
			"payload_passthru_mode":        "TestPayloadPassthru",
			"registration_revocation":      "TestRemoveCallee",
		},
	}
	e := newEnv(t, 1, nil)
	for _, ser := range sers {
		c := e.connect(ser)
		c.hello("realm1", allFeatures, nil)
		w := c.expect(proto.CodeWelcome)
		roles, _ := proto.DecodeValue(w.Opt.Raw(proto.KeyRoles))
		rm, _ := roles.(map[string]any)
		if len(rm) != len(want) {
			t.Fatalf("%s: WELCOME roles %v, want broker and dealer", ser, rm)
		}
		for role, feats := range want {
			r, _ := rm[role].(map[string]any)
			got, _ := r["features"].(map[string]any)
			for f, v := range got {
				if _, ok := feats[f]; !ok || v != true {
					t.Errorf("%s: %s announces %s: %v, which is not implemented here", ser, role, f, v)
				}
			}
			for f := range feats {
				if got[f] != true {
					t.Errorf("%s: %s does not announce %s (exercised by %s)", ser, role, f, feats[f])
				}
			}
		}
	}
}
