package route

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The single-message vectors of the WAMP specification's test suite
// (wamp-proto/testsuite, singlemessage/), sent to the router: proto's
// TestConformance and TestConformanceValidation check that they decode
// (or are refused) as the suite says, this that the router answers each
// as a router must. Read from the shared checkout next to the repository,
// like the multi-session vectors; the test skips when it is absent.
const singlemessageDir = "../../shared/wamp-testsuite/singlemessage"

type smSample struct {
	name string
	json []byte // the message as JSON text (binary payloads as "\u0000"+base64)
	code proto.Code
	// fails: the key the suite expects a protocol_violation to name, if
	// any.
	fails string
}

// loadSinglemessage reads every sample: a serialized one's JSON bytes, a
// validation sample's wmsg (its transparent payload, written as hex in
// the Arguments position, as the JSON binary string a client in payload
// passthru mode sends: proto's wmsgJSON).
func loadSinglemessage(t *testing.T) []smSample {
	t.Helper()
	if _, err := os.Stat(singlemessageDir); err != nil {
		t.Skipf("WAMP test suite not found at %s", singlemessageDir)
	}
	paths, err := filepath.Glob(filepath.Join(singlemessageDir, "*", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vector files under %s: %v", singlemessageDir, err)
	}
	sort.Strings(paths)
	var out []smSample
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Samples []struct {
				Serializers map[string][]struct {
					Bytes *string `json:"bytes"`
				} `json:"serializers"`
				Wmsg  json.RawMessage `json:"wmsg"`
				Error *struct {
					Type     string `json:"type"`
					Contains string `json:"contains"`
				} `json:"expected_error"`
			} `json:"samples"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		rel, _ := filepath.Rel(singlemessageDir, p)
		for i, s := range f.Samples {
			sm := smSample{name: fmt.Sprintf("%s/%d", filepath.ToSlash(rel), i)}
			switch {
			case s.Wmsg != nil:
				sm.json = smWmsg(t, s.Wmsg)
			case len(s.Serializers["json"]) > 0 && s.Serializers["json"][0].Bytes != nil:
				sm.json = []byte(*s.Serializers["json"][0].Bytes)
			default:
				t.Fatalf("%s: no JSON form", sm.name)
			}
			var head []json.RawMessage
			if err := json.Unmarshal(sm.json, &head); err != nil || len(head) == 0 {
				t.Fatalf("%s: %s: %v", sm.name, sm.json, err)
			}
			if err := json.Unmarshal(head[0], &sm.code); err != nil {
				t.Fatalf("%s: message code: %v", sm.name, err)
			}
			if s.Error != nil {
				if s.Error.Type != "protocol_violation" {
					t.Fatalf("%s: expected error type %q not known to this test", sm.name, s.Error.Type)
				}
				sm.fails = s.Error.Contains
			}
			out = append(out, sm)
		}
	}
	return out
}

// smWmsg is a validation sample's wmsg as JSON text, a hex string in the
// Arguments position of PUBLISH or EVENT turned into a JSON binary string.
func smWmsg(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var el []json.RawMessage
	if err := json.Unmarshal(raw, &el); err != nil {
		t.Fatal(err)
	}
	var code proto.Code
	if err := json.Unmarshal(el[0], &code); err != nil {
		t.Fatal(err)
	}
	at := map[proto.Code]int{proto.CodePublish: 4, proto.CodeEvent: 4}[code]
	if at > 0 && at < len(el) {
		var h string
		if json.Unmarshal(el[at], &h) == nil {
			b, err := hex.DecodeString(h)
			if err != nil {
				t.Fatalf("payload %q: %v", h, err)
			}
			el[at] = json.RawMessage(`"\u0000` + base64.StdEncoding.EncodeToString(b) + `"`)
		}
	}
	out, err := json.Marshal(el)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConformanceSingleMessagesAgainstRouter sends every single-message
// vector, in JSON, MsgPack and CBOR, to a router session (a HELLO to a new
// one, any other message to an established one) and checks the answer a
// router owes it: a sample the suite expects refused gets ABORT
// wamp.error.protocol_violation naming the key; a HELLO gets WELCOME;
// SUBSCRIBE SUBSCRIBED, REGISTER REGISTERED, a PUBLISH with acknowledge
// PUBLISHED (without, nothing), a CALL ERROR wamp.error.no_such_procedure,
// an UNSUBSCRIBE or UNREGISTER of an id the session does not hold its
// ERROR, each for the sample's request id; a YIELD or CANCEL of a request
// the router does not know, and EVENT_RECEIVED, nothing; GOODBYE GOODBYE
// wamp.close.goodbye_and_out; ABORT nothing. Wherever nothing is owed the
// session must still be established (a PUBLISH with acknowledge after it
// is answered). A message only a router sends (WELCOME, EVENT, RESULT,
// INVOCATION, ...), AUTHENTICATE in an established session and a
// client's ERROR for a CALL are protocol violations.
func TestConformanceSingleMessagesAgainstRouter(t *testing.T) {
	samples := loadSinglemessage(t)
	e := newEnv(t, 2, func(c *Config) {
		c.Realms = append(c.Realms, RealmConfig{Name: "com.example.realm"})
	})
	seen := map[proto.Code]bool{}
	for _, sm := range samples {
		seen[sm.code] = true
		for _, ser := range sers {
			t.Run(sm.name+"/"+ser.String(), func(t *testing.T) {
				wire := sm.json
				if ser != proto.JSON {
					var err error
					if wire, err = proto.Transcode(nil, ser, proto.Raw{Ser: proto.JSON, B: sm.json}); err != nil {
						t.Fatalf("transcode %s: %v", sm.json, err)
					}
				}
				c := e.connect(ser)
				if sm.code != proto.CodeHello {
					c.hello("realm1", allFeatures, nil)
					c.id = c.expect(proto.CodeWelcome).ID
				}
				c.sendBytes(wire)
				smCheck(t, c, sm)
				if !c.peer.closed.Load() {
					c.drop() // its registration must not meet the next serializer's REGISTER
				}
			})
		}
	}
	for _, code := range []proto.Code{proto.CodeHello, proto.CodePublish, proto.CodeSubscribe, proto.CodeCall, proto.CodeRegister, proto.CodeGoodbye} {
		if !seen[code] {
			t.Errorf("no %v sample in the suite", code)
		}
	}
}

func smCheck(t *testing.T, c *tc, sm smSample) {
	t.Helper()
	var m proto.Message
	dm, err := proto.Decode(proto.JSON, sm.json)
	if err == nil {
		m = *dm
	}
	if sm.fails != "" {
		got := c.recv()
		if got.Type != proto.CodeAbort || string(got.URI) != proto.URIProtocolViolation || !strings.Contains(got.Opt.String(proto.KeyMessage), sm.fails) {
			t.Fatalf("%s: got %v %q %q, want ABORT %s naming %q", sm.json, got.Type, got.URI, got.Opt.String(proto.KeyMessage), proto.URIProtocolViolation, sm.fails)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: the suite's valid sample does not decode: %v", sm.json, err)
	}
	expectErr := func(uri string) {
		t.Helper()
		got := c.recv()
		if got.Type != proto.CodeError || got.ReqType != m.Type || got.Request != m.Request || string(got.URI) != uri {
			t.Fatalf("%s: got %v %v %d %q, want ERROR %v %d %s", sm.json, got.Type, got.ReqType, got.Request, got.URI, m.Type, m.Request, uri)
		}
	}
	expect := func(code proto.Code) *proto.Message {
		t.Helper()
		got := c.recv()
		if got.Type != code {
			t.Fatalf("%s: got %v %s, want %v", sm.json, got.Type, describe(got), code)
		}
		return got
	}
	switch sm.code {
	case proto.CodeHello:
		expect(proto.CodeWelcome)
	case proto.CodeSubscribe, proto.CodeRegister:
		want := proto.CodeSubscribed
		if sm.code == proto.CodeRegister {
			want = proto.CodeRegistered
		}
		if got := expect(want); got.Request != m.Request || got.ID == 0 || got.ID > proto.MaxID {
			t.Fatalf("%s: %v request %d id %d", sm.json, want, got.Request, got.ID)
		}
	case proto.CodePublish:
		if m.Opt.Bool(proto.KeyAcknowledge, false) {
			if got := expect(proto.CodePublished); got.Request != m.Request || got.ID == 0 || got.ID > proto.MaxID {
				t.Fatalf("%s: PUBLISHED request %d id %d", sm.json, got.Request, got.ID)
			}
		}
		smAlive(t, c, sm)
	case proto.CodeCall:
		expectErr(proto.URINoSuchProcedure)
	case proto.CodeUnsubscribe:
		expectErr(proto.URINoSuchSubscription)
	case proto.CodeUnregister:
		expectErr(proto.URINoSuchRegistration)
	case proto.CodeYield, proto.CodeCancel, proto.CodeEventReceived:
		smAlive(t, c, sm)
	case proto.CodeGoodbye:
		if got := expect(proto.CodeGoodbye); string(got.URI) != proto.CloseGoodbyeAndOut {
			t.Fatalf("%s: GOODBYE reason %q", sm.json, got.URI)
		}
		smClosed(t, c, sm)
	case proto.CodeAbort:
		smClosed(t, c, sm)
	default:
		// Only a router sends it (or, AUTHENTICATE, not in this phase; a
		// client's ERROR only answers an INVOCATION).
		if got := expect(proto.CodeAbort); string(got.URI) != proto.URIProtocolViolation {
			t.Fatalf("%s: ABORT %q, want %s", sm.json, got.URI, proto.URIProtocolViolation)
		}
	}
}

// smAlive checks that nothing more came and the session is established:
// a PUBLISH with acknowledge is answered.
func smAlive(t *testing.T, c *tc, sm smSample) {
	t.Helper()
	req := c.publish("com.example.alive", map[string]any{"acknowledge": true}, nil, nil)
	got := c.recv()
	if got.Type != proto.CodePublished || got.Request != req {
		t.Fatalf("%s: then got %v %s, want PUBLISHED for %d", sm.json, got.Type, describe(got), req)
	}
}

// smClosed checks that the transport was closed, with nothing more sent.
func smClosed(t *testing.T, c *tc, sm smSample) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !c.peer.closed.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the transport was not closed", sm.json)
		}
		time.Sleep(time.Millisecond)
	}
	c.e.sync()
	select {
	case got := <-c.peer.in:
		t.Fatalf("%s: then got %v %s", sm.json, got.Type, describe(got))
	default:
	}
}
