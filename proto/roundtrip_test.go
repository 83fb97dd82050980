package proto

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// builtMessage is a message built the way the router builds one (typed Opt,
// no Dict), with the Dict that decoding its encoding must produce.
type builtMessage struct {
	name string
	m    *Message
}

// allMessages returns one or more built messages of every type, with
// Arguments and ArgumentsKw in JSON so that encoding them in MsgPack and
// CBOR transcodes.
func allMessages(t testing.TB) []builtMessage {
	t.Helper()
	args := mustEncodeValue(t, JSON, []any{int64(1), "two", 3.5, nil, true, []byte{0, 1, 2}})
	kwargs := mustEncodeValue(t, JSON, map[string]any{"a": "b", "n": map[string]any{"x": []any{}}})
	empty := mustEncodeValue(t, JSON, []any{})
	payload := mustEncodeValue(t, MsgPack, []byte("opaque \x00\xff bytes"))
	roles := mustEncodeValue(t, CBOR, map[string]any{"caller": map[string]any{"features": map[string]any{"call_timeout": true}}})
	extra := mustEncodeValue(t, JSON, map[string]any{"challenge": "{\"nonce\": 1}", "salt": "s", "iterations": int64(1000)})

	var out []builtMessage
	add := func(name string, m *Message) {
		// Every type with a dictionary decodes with HasDict set.
		for _, el := range layoutOf(m.Type).el[:layoutOf(m.Type).required] {
			if el == elDict {
				m.HasDict = true
			}
		}
		out = append(out, builtMessage{name, m})
	}
	msg := func(c Code) *Message { return &Message{Type: c} }

	m := msg(CodeHello)
	m.URI = []byte("realm1")
	m.Opt.SetRaw(KeyRoles, roles)
	m.Opt.SetRaw(KeyAuthMethods, mustEncodeValue(t, MsgPack, []string{"ticket", "wampcra"}))
	m.Opt.SetString(KeyAuthID, "alice")
	m.Opt.SetString(KeyAgent, "edgewamp-test/1 ünïcödé")
	add("HELLO", m)

	m = msg(CodeWelcome)
	m.ID = MaxID
	m.Opt.SetString(KeyRealm, "realm1")
	m.Opt.SetString(KeyAuthID, "alice")
	m.Opt.SetString(KeyAuthRole, "user")
	m.Opt.SetString(KeyAuthMethod, "ticket")
	m.Opt.SetString(KeyAuthProvider, "static")
	m.Opt.SetRaw(KeyRoles, roles)
	m.Opt.SetRaw(KeyAuthExtra, mustEncodeValue(t, JSON, map[string]any{"x_cb": "\u2603"}))
	add("WELCOME", m)

	m = msg(CodeAbort)
	m.Opt.SetString(KeyMessage, "realm does not exist")
	m.URI = []byte(URINoSuchRealm)
	add("ABORT", m)

	m = msg(CodeChallenge)
	m.URI = []byte("wampcra")
	m.Dict = extra
	add("CHALLENGE", m)

	m = msg(CodeAuthenticate)
	m.URI = []byte("gir1mSx+deCDUV7FgLvsQNTi6n3W/Z/WcZ/OT9RwdZY=")
	add("AUTHENTICATE", m)

	m = msg(CodeGoodbye)
	m.URI = []byte(CloseGoodbyeAndOut)
	add("GOODBYE", m)

	m = msg(CodeError)
	m.ReqType = CodeCall
	m.Request = 7
	m.URI = []byte("com.myapp.error.object_write_protected")
	m.Args, m.Kwargs = args, kwargs
	add("ERROR", m)

	m = msg(CodeError)
	m.ReqType = CodeSubscribe
	m.Request = 8
	m.URI = []byte(URINotAuthorized)
	add("ERROR/no-args", m)

	m = msg(CodePublish)
	m.Request = 1
	m.Opt.SetBool(KeyAcknowledge, true)
	m.Opt.SetBool(KeyExcludeMe, false)
	m.Opt.SetBool(KeyRetain, true)
	m.Opt.SetRaw(KeyExclude, mustEncodeValue(t, CBOR, []uint64{1, MaxID}))
	m.Opt.SetRaw(KeyEligibleAuthRole, mustEncodeValue(t, JSON, []string{"admin"}))
	m.Opt.SetString(KeyTransactionHash, "abc123")
	m.URI = []byte("com.myapp.topic1")
	m.Args, m.Kwargs = args, kwargs
	add("PUBLISH", m)

	m = msg(CodePublish)
	m.Request = 2
	m.URI = []byte("com.myapp.signal")
	add("PUBLISH/signal", m)

	m = msg(CodePublish)
	m.Request = 3
	m.Opt.SetString(KeyEncAlgo, "cryptobox")
	m.Opt.SetString(KeyEncSerializer, "x_custom")
	m.URI = []byte("com.myapp.secret")
	m.Args, m.Transparent = payload, true
	add("PUBLISH/transparent", m)

	m = msg(CodePublished)
	m.Request, m.ID = 1, 4429313566
	add("PUBLISHED", m)

	m = msg(CodeSubscribe)
	m.Request = 4
	m.Opt.SetString(KeyMatch, "prefix")
	m.Opt.SetBool(KeyGetRetained, true)
	m.URI = []byte("com.myapp.")
	add("SUBSCRIBE", m)

	m = msg(CodeSubscribed)
	m.Request, m.ID = 4, 5512315355
	add("SUBSCRIBED", m)

	m = msg(CodeUnsubscribe)
	m.Request, m.ID = 5, 5512315355
	add("UNSUBSCRIBE", m)

	m = msg(CodeUnsubscribed)
	m.Request = 5
	add("UNSUBSCRIBED", m)

	m = msg(CodeUnsubscribed)
	m.HasDict = true
	m.Opt.SetUint(KeyPublisher, 0) // an id key in a revocation is odd but legal
	m.Opt.SetString(KeyReason, "wamp.subscription.revoked")
	add("UNSUBSCRIBED/revocation", m)

	m = msg(CodeEvent)
	m.ID, m.ID2 = 5512315355, 4429313566
	m.Opt.SetUint(KeyPublisher, 3335656)
	m.Opt.SetString(KeyTopic, "com.myapp.topic1")
	m.Opt.SetBool(KeyRetained, true)
	m.Opt.SetUint(KeyTrustLevel, 2)
	m.Args = args
	add("EVENT", m)

	m = msg(CodeEvent)
	m.ID, m.ID2 = 1, 2
	m.Args, m.Kwargs = empty, kwargs
	add("EVENT/kwargs-only", m)

	m = msg(CodeEvent)
	m.ID, m.ID2 = 1, 2
	m.Opt.SetString(KeyEncAlgo, "mqtt")
	m.Args, m.Transparent = payload, true
	add("EVENT/transparent", m)

	m = msg(CodeCall)
	m.Request = 7814135
	m.Opt.SetBool(KeyReceiveProgress, true)
	m.Opt.SetUint(KeyTimeout, 1000)
	m.Opt.SetString(KeyRKey, "device-17")
	m.URI = []byte("com.myapp.myprocedure1")
	m.Args, m.Kwargs = args, kwargs
	add("CALL", m)

	m = msg(CodeCancel)
	m.Request = 7814135
	m.Opt.SetString(KeyMode, "kill")
	add("CANCEL", m)

	m = msg(CodeResult)
	m.Request = 7814135
	m.Opt.SetBool(KeyProgress, true)
	m.Args = args
	add("RESULT", m)

	m = msg(CodeResult)
	m.Request = 7814136
	add("RESULT/empty", m)

	m = msg(CodeRegister)
	m.Request = 25349185
	m.Opt.SetString(KeyMatch, "wildcard")
	m.Opt.SetString(KeyInvoke, "roundrobin")
	m.Opt.SetBool(KeyDiscloseCaller, true)
	m.Opt.SetBool(KeyForwardTimeout, true)
	m.URI = []byte("com.myapp..update")
	add("REGISTER", m)

	m = msg(CodeRegistered)
	m.Request, m.ID = 25349185, 2103333224
	add("REGISTERED", m)

	m = msg(CodeUnregister)
	m.Request, m.ID = 788923562, 2103333224
	add("UNREGISTER", m)

	m = msg(CodeUnregistered)
	m.Request = 788923562
	add("UNREGISTERED", m)

	m = msg(CodeUnregistered)
	m.HasDict = true
	m.Opt.SetString(KeyReason, "wamp.registration.revoked")
	add("UNREGISTERED/revocation", m)

	m = msg(CodeInvocation)
	m.Request, m.ID = 6131533, 9823526
	m.Opt.SetBool(KeyReceiveProgress, true)
	m.Opt.SetUint(KeyCaller, 3335656)
	m.Opt.SetString(KeyCallerAuthID, "alice")
	m.Opt.SetString(KeyCallerAuthRole, "user")
	m.Opt.SetString(KeyProcedure, "com.myapp.myprocedure1")
	m.Opt.SetUint(KeyTimeout, 500)
	m.Opt.SetRaw(KeyForwardFor, mustEncodeValue(t, MsgPack, []any{map[string]any{"session": int64(1), "authid": "r1", "authrole": "router"}}))
	m.Args, m.Kwargs = args, kwargs
	add("INVOCATION", m)

	m = msg(CodeInterrupt)
	m.Request = 6131533
	m.Opt.SetString(KeyMode, "killnowait")
	m.Opt.SetString(KeyReason, URICanceled)
	add("INTERRUPT", m)

	m = msg(CodeYield)
	m.Request = 6131533
	m.Opt.SetBool(KeyProgress, true)
	m.Args = args
	add("YIELD", m)

	m = msg(CodeEventReceived)
	m.ID2 = 5512315355
	add("EVENT_RECEIVED", m)
	return out
}

// TestAllCodesCovered keeps allMessages complete as message types are added.
func TestAllCodesCovered(t *testing.T) {
	seen := map[Code]bool{}
	for _, b := range allMessages(t) {
		seen[b.m.Type] = true
	}
	for c := Code(0); c < 1024; c++ {
		if c.Known() != seen[c] {
			t.Errorf("code %d (%s): known %v, covered by allMessages %v", c, c, c.Known(), seen[c])
		}
	}
	if len(seen) != 25 {
		t.Errorf("got %d message types, want the 24 of the RFC + EVENT_RECEIVED", len(seen))
	}
}

// TestRoundTrip encodes every built message in each serializer, decodes it,
// and checks that the decoded message carries what was built; then encodes
// the decoded message in every serializer (3×3) and decodes it again.
func TestRoundTrip(t *testing.T) {
	for _, bm := range allMessages(t) {
		for _, a := range serializers {
			t.Run(bm.name+"/"+a.String(), func(t *testing.T) {
				b := mustAppend(t, a, bm.m)
				got := mustDecode(t, a, b)
				requireBuilt(t, bm.m, got)
				for _, c := range serializers {
					bc := mustAppend(t, c, got)
					gc := mustDecode(t, c, bc)
					requireSameMessage(t, got, gc, eqOpts{}, a.String()+"->"+c.String())
					// And back: the same bytes as the first encoding.
					back := mustAppend(t, a, gc)
					if !bytes.Equal(back, b) {
						t.Fatalf("%s->%s->%s changed the bytes:\n got %s\nwant %s", a, c, a, show(a, back), show(a, b))
					}
				}
			})
		}
	}
}

// requireBuilt checks a decoded message against the message it was encoded
// from (which has typed Opt and no Dict, or a Dict set directly).
func requireBuilt(t *testing.T, want, got *Message) {
	t.Helper()
	if headOf(want) != headOf(got) {
		t.Fatalf("head: got %+v, want %+v", headOf(got), headOf(want))
	}
	if !bytes.Equal(want.URI, got.URI) {
		t.Fatalf("URI: got %q, want %q", got.URI, want.URI)
	}
	wantOpt := fieldsDump(t, &want.Opt)
	if want.Dict.Present() {
		requireValue(t, mustValue(t, want.Dict), mustValue(t, got.Dict), "Dict")
	} else if got.HasDict {
		requireValue(t, map[string]any(wantOpt), mustValue(t, got.Dict), "Dict from Opt")
	}
	if !want.Dict.Present() {
		requireValue(t, wantOpt, fieldsDump(t, &got.Opt), "Opt")
	}
	if want.Args.Present() != got.Args.Present() || want.Kwargs.Present() != got.Kwargs.Present() {
		t.Fatalf("Args/Kwargs presence: got %v/%v, want %v/%v", got.Args.Present(), got.Kwargs.Present(), want.Args.Present(), want.Kwargs.Present())
	}
	requireValue(t, mustValue(t, want.Args), mustValue(t, got.Args), "Args")
	requireValue(t, mustValue(t, want.Kwargs), mustValue(t, got.Kwargs), "Kwargs")
}

// TestEncodeGolden pins the exact bytes of a few encodings.
func TestEncodeGolden(t *testing.T) {
	call := &Message{Type: CodeCall, Request: 1, URI: []byte("com.x")}
	call.Opt.SetBool(KeyReceiveProgress, true)
	call.Opt.SetUint(KeyTimeout, 1000)
	call.Args = mustEncodeValue(t, JSON, []any{int64(1)})
	call.Kwargs = mustEncodeValue(t, JSON, map[string]any{"a": "b"})

	kwOnly := &Message{Type: CodeResult, Request: 2}
	kwOnly.Kwargs = mustEncodeValue(t, MsgPack, map[string]any{"k": 1.0})

	revoke := &Message{Type: CodeUnregistered, HasDict: true}
	revoke.Opt.SetString(KeyReason, "wamp.registration.revoked")

	tests := []struct {
		name string
		ser  Serializer
		m    *Message
		want string // JSON text, or hex for the binary serializers
	}{
		{"call/json", JSON, call, `[48,1,{"receive_progress":true,"timeout":1000},"com.x",[1],{"a":"b"}]`},
		{"call/msgpack", MsgPack, call, "9630" + "01" + "82" + "b0" + fmt.Sprintf("%x", "receive_progress") + "c3" + "a7" + fmt.Sprintf("%x", "timeout") + "cd03e8" + "a5" + fmt.Sprintf("%x", "com.x") + "9101" + "81a161a162"},
		{"call/cbor", CBOR, call, "861830" + "01" + "a2" + "70" + fmt.Sprintf("%x", "receive_progress") + "f5" + "67" + fmt.Sprintf("%x", "timeout") + "1903e8" + "65" + fmt.Sprintf("%x", "com.x") + "8101" + "a1616161" + "62"},
		{"kwargs-only/json", JSON, kwOnly, `[50,2,{},[],{"k":1.0}]`},
		{"revocation/json", JSON, revoke, `[67,0,{"reason":"wamp.registration.revoked"}]`},
		{"empty-result/cbor", CBOR, &Message{Type: CodeResult, Request: 3}, "83183203a0"},
		{"event-received/msgpack", MsgPack, &Message{Type: CodeEventReceived, ID2: 5512315355}, "92cd0151cf00000001488f41db"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustAppend(t, tc.ser, tc.m)
			want := []byte(tc.want)
			if tc.ser != JSON {
				want = mustHex(t, tc.want)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got  %s\nwant %s", show(tc.ser, got), show(tc.ser, want))
			}
		})
	}
}

// TestEncodeAppends checks that Append appends to dst and leaves dst's
// contents alone on error.
func TestEncodeAppends(t *testing.T) {
	var e Encoder
	prefix := []byte("prefix")
	m := &Message{Type: CodeGoodbye, URI: []byte(CloseNormal)}
	out, err := e.Append(append([]byte(nil), prefix...), JSON, m)
	requireNoError(t, err, "Append")
	if want := `prefix[6,{},"wamp.close.normal"]`; string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}

	bad := &Message{Type: CodeCall, Request: 1, URI: []byte("p"), Args: Raw{Ser: MsgPack, B: []byte{0x91, 0xa1, 0xff}}}
	out, err = e.Append(append([]byte(nil), prefix...), JSON, bad)
	if err == nil || !bytes.Equal(out, prefix) {
		t.Fatalf("invalid UTF-8 to JSON: got %q, %v; want %q and an error", out, err, prefix)
	}
	if _, err := e.Append(nil, JSON, &Message{Type: 99}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("unknown type: got %v, want %v", err, ErrUnknownType)
	}
	if _, err := e.Append(nil, Serializer(9), m); !errors.Is(err, ErrBadSerializer) {
		t.Fatalf("bad serializer: got %v, want %v", err, ErrBadSerializer)
	}
}

// TestDecodeReuse decodes different messages into one Message with one
// Decoder: nothing of an earlier message may survive into a later one.
func TestDecodeReuse(t *testing.T) {
	var d Decoder
	var m Message
	msgs := allMessages(t)
	for _, ser := range serializers {
		for _, bm := range msgs {
			b := mustAppend(t, ser, bm.m)
			requireNoError(t, d.Decode(ser, b, &m), "Decode "+bm.name)
			requireSameMessage(t, mustDecode(t, ser, b), &m, eqOpts{}, bm.name)
		}
	}
	if err := d.Decode(Serializer(0), []byte("[1]"), &m); !errors.Is(err, ErrBadSerializer) {
		t.Fatalf("bad serializer: got %v", err)
	}
	if m.Type != 0 || m.URI != nil || m.Opt.Len() != 0 {
		t.Fatalf("failed Decode left data in the message: %+v", m)
	}
}

// TestClone checks that a clone owns its bytes: it survives the input being
// overwritten and equals the original.
func TestClone(t *testing.T) {
	for _, ser := range serializers {
		for _, bm := range allMessages(t) {
			b := mustAppend(t, ser, bm.m)
			orig := mustDecode(t, ser, b)
			want := mustDecode(t, ser, append([]byte(nil), b...))
			c := orig.Clone()
			for i := range b {
				b[i] = 0xa5
			}
			requireSameMessage(t, want, c, eqOpts{}, ser.String()+" clone of "+bm.name)
		}
	}
}

// TestEscapedStringsInHead decodes JSON heads whose strings hold escapes
// (which are unescaped into the Decoder's scratch) and checks that several
// of them in one message stay intact.
func TestEscapedStringsInHead(t *testing.T) {
	in := `[36,1,2,{"topic":"com.\u00e9v\"t","publisher_authid":"a\\b\/c","x_\u006bey":"\ud83d\ude00"},[]]`
	m := mustDecode(t, JSON, []byte(in))
	if got, want := m.Opt.String(KeyTopic), "com.\u00e9v\"t"; got != want {
		t.Fatalf("topic: got %q, want %q", got, want)
	}
	if got, want := m.Opt.String(KeyPublisherAuthID), `a\b/c`; got != want {
		t.Fatalf("publisher_authid: got %q, want %q", got, want)
	}
	d := mustValue(t, m.Dict).(map[string]any)
	if got := d["x_key"]; got != "\U0001F600" {
		t.Fatalf("x_key: got %q, want U+1F600", got)
	}
	m = mustDecode(t, JSON, []byte(`[48,1,{},"com.\u0041\u00df\u6c34\ud834\udd1e"]`))
	if got, want := string(m.URI), "com.Aß水\U0001D11E"; got != want {
		t.Fatalf("URI: got %q, want %q", got, want)
	}
}

func TestCodeAndSerializerNames(t *testing.T) {
	if CodeCall.String() != "CALL" || CodeEventReceived.String() != "EVENT_RECEIVED" || Code(7).String() != "UNKNOWN" {
		t.Fatalf("Code.String: %s %s %s", CodeCall, CodeEventReceived, Code(7))
	}
	for _, tc := range []struct {
		p       string
		ser     Serializer
		batched bool
	}{
		{"wamp.2.json", JSON, false}, {"wamp.2.msgpack", MsgPack, false}, {"wamp.2.cbor", CBOR, false},
		{"wamp.2.json.batched", JSON, true}, {"wamp.2.msgpack.batched", MsgPack, true}, {"wamp.2.cbor.batched", CBOR, true},
	} {
		ser, batched, ok := ParseSubprotocol(tc.p)
		if !ok || ser != tc.ser || batched != tc.batched || ser.Subprotocol(batched) != tc.p {
			t.Errorf("%s: got %v %v %v", tc.p, ser, batched, ok)
		}
	}
	if _, _, ok := ParseSubprotocol("wamp.2.ubjson"); ok {
		t.Errorf("ubjson accepted")
	}
	if JSON.Binary() || !MsgPack.Binary() || !CBOR.Binary() {
		t.Errorf("Binary")
	}
	if Serializer(0).Valid() || Serializer(4).Valid() || Serializer(4).String() != "unknown" || Serializer(4).Subprotocol(false) != "" {
		t.Errorf("invalid serializer accepted")
	}
	if (Raw{}).Present() || (Raw{}).Clone().Present() {
		t.Errorf("zero Raw present")
	}
}

// TestEmptyAndAbsentPayload distinguishes absent Arguments/ArgumentsKw from
// empty ones, in every serializer pair: absent stays absent, an empty list
// or dict stays present, and ArgumentsKw alone brings an empty Arguments.
func TestEmptyAndAbsentPayload(t *testing.T) {
	tests := []struct {
		in                     string
		args, kwargs           any // nil: absent
		argsPresent, kwPresent bool
	}{
		{`[48,1,{},"p"]`, nil, nil, false, false},
		{`[48,1,{},"p",[]]`, []any{}, nil, true, false},
		{`[48,1,{},"p",[],{}]`, []any{}, map[string]any{}, true, true},
		{`[48,1,{},"p",[1],{}]`, []any{int64(1)}, map[string]any{}, true, true},
		{`[50,1,{}]`, nil, nil, false, false},
		{`[50,1,{},[],{"a":null}]`, []any{}, map[string]any{"a": nil}, true, true},
	}
	for _, tc := range tests {
		for _, a := range serializers {
			m, err := decodeIn(t, a, tc.in)
			requireNoError(t, err, tc.in)
			for _, b := range serializers {
				got := mustDecode(t, b, mustAppend(t, b, m))
				if got.Args.Present() != tc.argsPresent || got.Kwargs.Present() != tc.kwPresent {
					t.Fatalf("%s %s->%s: Args/Kwargs present %v/%v, want %v/%v", tc.in, a, b,
						got.Args.Present(), got.Kwargs.Present(), tc.argsPresent, tc.kwPresent)
				}
				requireValue(t, tc.args, mustValue(t, got.Args), "Args")
				requireValue(t, tc.kwargs, mustValue(t, got.Kwargs), "Kwargs")
			}
		}
	}
	// Kwargs alone: the encoder writes an empty Arguments list before it.
	m := &Message{Type: CodeYield, Request: 1, Kwargs: mustEncodeValue(t, CBOR, map[string]any{"k": "v"})}
	if got := string(mustAppend(t, JSON, m)); got != `[70,1,{},[],{"k":"v"}]` {
		t.Fatalf("kwargs only: got %s", got)
	}
	if v, err := DecodeValue(Raw{}); v != nil || err != nil {
		t.Fatalf("DecodeValue of an absent value: %v, %v", v, err)
	}
}
