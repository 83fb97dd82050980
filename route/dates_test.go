package route

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A Date in a payload, as wampy's MsgPack serializer (msgpackr) writes it:
// the MsgPack timestamp extension, here timestamp 64 for
// 2026-12-03T19:58:56.123Z and timestamp 32 for 19:58:56 (the bytes of
// new MsgpackSerializer().encode(new Date(...)), wampy 8.0.2). cbor-x, for
// wampy's CBOR serializer, writes the same instants as tag 1 on a float64
// and on a uint32.
const (
	dateMsgPack      = "d7ff1d5353006b11ca00"
	dateMsgPackWhole = "d6ff6b11ca00"
	dateCBOR         = "c1fb41dac4728007df3b"
	dateCBORWhole    = "c11a6b11ca00"
)

func mustHexRoute(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A MsgPack publisher's Date used to end its session (ABORT: "msgpack
// extension types are not supported"), and no subscriber got the event. It
// now reaches a MsgPack subscriber as the publisher's bytes, a JSON one as
// the text JSON.stringify writes for a Date, a CBOR one as tag 1 (what
// cbor-x writes for a Date); the publisher's session goes on.
func TestDatePublishedToEverySerializer(t *testing.T) {
	e := newEnv(t, 2, nil)
	subs := map[proto.Serializer]*tc{}
	for _, ser := range []proto.Serializer{proto.MsgPack, proto.JSON, proto.CBOR} {
		subs[ser] = e.join(ser)
		subs[ser].subscribe("com.t", nil)
	}
	pub := e.join(proto.MsgPack)
	args := append([]byte{0x91}, mustHexRoute(t, dateMsgPack)...)
	kwargs := append(mustHexRoute(t, "81a26174"), mustHexRoute(t, dateMsgPackWhole)...) // {"at": …}
	req := pub.nextReq()
	pub.send(&proto.Message{Type: proto.CodePublish, Request: req, Dict: pub.opts(map[string]any{"acknowledge": true}), URI: []byte("com.t"),
		Args: proto.Raw{Ser: proto.MsgPack, B: args}, Kwargs: proto.Raw{Ser: proto.MsgPack, B: kwargs}})
	if m := pub.recv(); m.Type != proto.CodePublished || m.Request != req {
		t.Fatalf("publisher got %v %s, want PUBLISHED", m.Type, describe(m))
	}
	for _, c := range []struct {
		ser          proto.Serializer
		args, kwargs string
	}{
		{proto.MsgPack, hex.EncodeToString(args), hex.EncodeToString(kwargs)},
		{proto.JSON, hex.EncodeToString([]byte(`["2026-12-03T19:58:56.123Z"]`)), hex.EncodeToString([]byte(`{"at":"2026-12-03T19:58:56Z"}`))},
		{proto.CBOR, "81" + dateCBOR, "a1626174" + dateCBORWhole},
	} {
		ev := subs[c.ser].expect(proto.CodeEvent)
		if got := hex.EncodeToString(ev.Args.B); got != c.args {
			t.Errorf("%s subscriber's Arguments: %s, want %s", c.ser, got, c.args)
		}
		if got := hex.EncodeToString(ev.Kwargs.B); got != c.kwargs {
			t.Errorf("%s subscriber's ArgumentsKw: %s, want %s", c.ser, got, c.kwargs)
		}
	}
	// The Go client's view (proto.DecodeValue) of the MsgPack event.
	want := time.Date(2026, 12, 3, 19, 58, 56, 123e6, time.UTC)
	pub.publish("com.t", nil, []any{want}, nil)
	if got, _ := argsOf(subs[proto.MsgPack].expect(proto.CodeEvent))[0].(time.Time); !got.Equal(want) {
		t.Fatalf("MsgPack subscriber decodes %v, want %v", got, want)
	}
	subs[proto.JSON].expect(proto.CodeEvent)
	subs[proto.CBOR].expect(proto.CodeEvent)
	// The publisher's session is still open.
	pub.publish("com.t", map[string]any{"acknowledge": true}, []any{"after"}, nil)
	if m := pub.recv(); m.Type != proto.CodePublished {
		t.Fatalf("publisher got %v %s after its Date, want PUBLISHED", m.Type, describe(m))
	}
}

// A cbor-x caller's Date (tag 1) reaches a MsgPack callee as a timestamp,
// which msgpackr decodes as a Date again; the callee's Date comes back to
// the CBOR caller as tag 1, and to a JSON caller as text.
func TestDateInCallAcrossSerializers(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee := e.join(proto.MsgPack)
	callee.register("com.echo", nil)
	caller := e.join(proto.CBOR)
	req := caller.nextReq()
	caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(nil), URI: []byte("com.echo"),
		Args: proto.Raw{Ser: proto.CBOR, B: mustHexRoute(t, "81"+dateCBOR)}})
	inv := callee.expect(proto.CodeInvocation)
	if got, want := hex.EncodeToString(inv.Args.B), "91"+dateMsgPack; got != want {
		t.Fatalf("MsgPack callee's Arguments: %s, want %s", got, want)
	}
	callee.send(&proto.Message{Type: proto.CodeYield, Request: inv.Request, Dict: callee.opts(nil), Args: inv.Args})
	res := caller.expect(proto.CodeResult)
	if got, want := hex.EncodeToString(res.Args.B), "81"+dateCBOR; got != want {
		t.Fatalf("CBOR caller's result: %s, want %s", got, want)
	}
	js := e.join(proto.JSON)
	js.call("com.echo", nil, []any{"x"}, nil)
	inv = callee.expect(proto.CodeInvocation)
	callee.send(&proto.Message{Type: proto.CodeYield, Request: inv.Request, Dict: callee.opts(nil),
		Args: proto.Raw{Ser: proto.MsgPack, B: mustHexRoute(t, "91"+dateMsgPack)}})
	if res := js.expect(proto.CodeResult); string(res.Args.B) != `["2026-12-03T19:58:56.123Z"]` {
		t.Fatalf("JSON caller's result: %s", res.Args.B)
	}
}

// A malformed timestamp (nanoseconds of a whole second, which
// msgpack-python refuses) is refused like any malformed payload, before
// any subscriber sees it, and the ABORT says what is wrong with it.
func TestMalformedTimestampRefused(t *testing.T) {
	e := newEnv(t, 1, nil)
	sub := e.join(proto.MsgPack)
	sub.subscribe("com.t", nil)
	pub := e.join(proto.MsgPack)
	pub.send(&proto.Message{Type: proto.CodePublish, Request: pub.nextReq(), Dict: pub.opts(nil), URI: []byte("com.t"),
		Args: proto.Raw{Ser: proto.MsgPack, B: mustHexRoute(t, "91d7ffee6b280000000000")}})
	m := pub.recv()
	if m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
		t.Fatalf("publisher got %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
	}
	if msg := m.Opt.String(proto.KeyMessage); !strings.Contains(msg, "timestamp") || !strings.Contains(msg, "nanoseconds below 10^9") {
		t.Fatalf("ABORT message %q, want it to name the timestamp's nanoseconds", msg)
	}
	sub.quiet()
}
