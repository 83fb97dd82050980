package wire

import (
	"bytes"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

var sers = []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR}

func mustValue(t *testing.T, ser proto.Serializer, v any) proto.Raw {
	t.Helper()
	r, err := proto.EncodeValue(ser, v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func encode(t *testing.T, ser proto.Serializer, m *proto.Message) []byte {
	t.Helper()
	b, err := proto.Append(nil, ser, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A payload with every kind of value the skippers must pass over.
func richValue() any {
	return map[string]any{
		"s":   "a \"quoted\" \\ string, with ] and } inside",
		"n":   -12345678901,
		"f":   3.25,
		"big": uint64(1) << 60,
		"b":   []byte{0, 1, 2, 0xff},
		"t":   true,
		"nil": nil,
		"l":   []any{1, "two", []any{3, map[string]any{"x": []any{}}}},
		"m":   map[string]any{"k": map[string]any{}},
		"u":   "ünïcode",
	}
}

func TestHead(t *testing.T) {
	for _, ser := range sers {
		dict := mustValue(t, ser, richValue())
		args := mustValue(t, ser, []any{"x", richValue()})
		cases := []struct {
			m       proto.Message
			typ     proto.Code
			a, b    uint64
			comment string
		}{
			{proto.Message{Type: proto.CodeWelcome, ID: 77, Dict: dict}, proto.CodeWelcome, 77, 0, "session id"},
			{proto.Message{Type: proto.CodeResult, Request: 1 << 53, Dict: dict, Args: args}, proto.CodeResult, 1 << 53, 0, "largest id"},
			{proto.Message{Type: proto.CodeRegistered, Request: 5, ID: 9}, proto.CodeRegistered, 5, 9, ""},
			{proto.Message{Type: proto.CodeSubscribed, Request: 300, ID: 70000}, proto.CodeSubscribed, 300, 70000, ""},
			{proto.Message{Type: proto.CodeInvocation, Request: 1, ID: 2, Dict: dict, Args: args}, proto.CodeInvocation, 1, 2, ""},
			{proto.Message{Type: proto.CodeEvent, ID: 3, ID2: 4, Args: args}, proto.CodeEvent, 3, 4, ""},
			{proto.Message{Type: proto.CodePublished, Request: 8, ID: 1e15}, proto.CodePublished, 8, 1e15, ""},
			{proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: 42, Dict: dict, URI: []byte("wamp.error.x")}, proto.CodeError, 48, 42, ""},
			{proto.Message{Type: proto.CodeGoodbye, Dict: dict, URI: []byte("wamp.close.normal")}, proto.CodeGoodbye, 0, 0, ""},
		}
		for _, c := range cases {
			b := encode(t, ser, &c.m)
			typ, a, bb, err := Head(ser, b)
			if err != nil || typ != c.typ || a != c.a || bb != c.b {
				t.Errorf("%s %s %s: got %v %d %d %v, want %v %d %d", ser, c.typ, c.comment, typ, a, bb, err, c.typ, c.a, c.b)
			}
			// Every strict prefix is refused or yields a different head,
			// never a panic.
			for i := 0; i < len(b); i++ {
				Head(ser, b[:i])
			}
		}
	}
}

func TestErrorURIAndEventStamp(t *testing.T) {
	for _, ser := range sers {
		dict := mustValue(t, ser, richValue())
		e := encode(t, ser, &proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: 1, Dict: dict, URI: []byte("wamp.error.no_such_procedure"), Args: mustValue(t, ser, []any{"why"})})
		uri, err := ErrorURI(ser, e)
		if err != nil || string(uri) != "wamp.error.no_such_procedure" {
			t.Errorf("%s: ErrorURI = %q, %v", ser, uri, err)
		}
		ev := encode(t, ser, &proto.Message{Type: proto.CodeEvent, ID: 1, ID2: 2, Dict: dict, Args: mustValue(t, ser, []any{uint64(1234567890123456), "pad"})})
		st, err := EventStamp(ser, ev)
		if err != nil || st != 1234567890123456 {
			t.Errorf("%s: EventStamp = %d, %v", ser, st, err)
		}
		noStamp := encode(t, ser, &proto.Message{Type: proto.CodeEvent, ID: 1, ID2: 2, Args: mustValue(t, ser, []any{"pad"})})
		if _, err := EventStamp(ser, noStamp); err == nil {
			t.Errorf("%s: EventStamp of a string argument did not fail", ser)
		}
	}
}

// The skippers agree with proto on where each element ends: skip every
// element of a message whose dict and args hold every kind of value, then
// check the scanner reached the end.
func TestSkipReachesEnd(t *testing.T) {
	for _, ser := range sers {
		dict := mustValue(t, ser, richValue())
		args := mustValue(t, ser, []any{richValue(), []any{richValue()}, -1, 1.5e300, ""})
		kw := mustValue(t, ser, richValue())
		b := encode(t, ser, &proto.Message{Type: proto.CodeCall, Request: 1, Dict: dict, URI: []byte("com.x"), Args: args, Kwargs: kw})
		s := NewScanner(ser, b)
		n, err := s.Array()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 6; i++ {
			if err := s.Skip(); err != nil {
				t.Fatalf("%s: element %d: %v", ser, i, err)
			}
		}
		if ser != proto.JSON && n != 6 {
			t.Errorf("%s: array count %d", ser, n)
		}
		want := len(b)
		if ser == proto.JSON {
			want-- // the closing bracket
		}
		if s.Pos() != want {
			t.Errorf("%s: scanner at %d of %d", ser, s.Pos(), len(b))
		}
		if err := s.Skip(); err == nil && ser == proto.JSON {
			t.Errorf("%s: skipped past the last element", ser)
		}
	}
}

func TestJSONWhiteSpace(t *testing.T) {
	b := []byte(" [ 50 ,\n 1234 , { \"a\" : [ 1 , 2 ] } , [ 1000000000000001 , \"x\" ] ] ")
	typ, a, _, err := Head(proto.JSON, b)
	if err != nil || typ != proto.CodeResult || a != 1234 {
		t.Fatalf("Head = %v %d %v", typ, a, err)
	}
	s, e, err := FieldAt(proto.JSON, b, 3, 0)
	if err != nil || string(b[s:e]) != "1000000000000001" {
		t.Fatalf("FieldAt = %q %v", b[s:e], err)
	}
}

func TestBadInput(t *testing.T) {
	bad := []struct {
		ser proto.Serializer
		b   string
	}{
		{proto.JSON, `{}`},
		{proto.JSON, `[-1]`},
		{proto.JSON, `[1.5]`},
		{proto.JSON, `["x"]`},
		{proto.JSON, `[50 1]`},
		{proto.MsgPack, "\x91\xd0\xff"}, // negative int8
		{proto.MsgPack, "\x91\xc1"},     // never used
		{proto.MsgPack, "\xdc\x00"},     // cut array16
		{proto.CBOR, "\x81\x20"},        // negative int
		{proto.CBOR, "\x81\x1c"},        // reserved additional info
		{proto.CBOR, ""},
	}
	for _, c := range bad {
		if _, _, _, err := Head(c.ser, []byte(c.b)); err == nil {
			t.Errorf("%s %q: no error", c.ser, c.b)
		}
	}
}

func TestTemplatePatch(t *testing.T) {
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	for _, ser := range sers {
		for _, fr := range []Framer{{WS: true, Ser: ser, Mask: &mask}, {WS: true, Ser: ser}, {WS: false, Ser: ser}} {
			for _, size := range []int{0, 3, 200, 70000} {
				pad := string(bytes.Repeat([]byte("p"), size))
				msg := encode(t, ser, &proto.Message{Type: proto.CodePublish, Request: FixedMin, URI: []byte("com.topic"),
					Args: mustValue(t, ser, []any{uint64(FixedMin), pad})})
				tm, err := NewTemplate(&fr, msg, []int{1}, []int{4, 0})
				if err != nil {
					t.Fatalf("%s: %v", ser, err)
				}
				out := tm.AppendTo([]byte("junk"), FixedMin+123456789, FixedMax-1)
				out = out[4:]
				got := unframe(t, &fr, out)
				m, err := proto.Decode(ser, got)
				if err != nil {
					t.Fatalf("%s ws=%v: decode: %v", ser, fr.WS, err)
				}
				if m.Request != FixedMin+123456789 {
					t.Errorf("%s ws=%v mask=%v: id %d", ser, fr.WS, fr.Mask != nil, m.Request)
				}
				v, err := proto.DecodeValue(m.Args)
				if err != nil {
					t.Fatal(err)
				}
				l := v.([]any)
				if st := toUint(l[0]); st != FixedMax-1 || l[1].(string) != pad {
					t.Errorf("%s ws=%v: stamp %v", ser, fr.WS, l[0])
				}
			}
		}
	}
}

func toUint(v any) uint64 {
	switch x := v.(type) {
	case uint64:
		return x
	case int64:
		return uint64(x)
	case float64:
		return uint64(x)
	}
	return 0
}

// unframe undoes Framer.Append for one message.
func unframe(t *testing.T, f *Framer, b []byte) []byte {
	t.Helper()
	if !f.WS {
		typ, n, ok, err := ParseRawHeader(b)
		if !ok || err != nil || typ != RawMessage || n != len(b)-4 {
			t.Fatalf("raw header: %d %d %v %v", typ, n, ok, err)
		}
		return b[4:]
	}
	h, n, err := ParseFrameHeader(b)
	if n == 0 || err != nil || !h.Fin || h.Len != len(b)-n || h.Masked != (f.Mask != nil) {
		t.Fatalf("ws header: %+v %d %v", h, n, err)
	}
	wantOp := byte(OpBinary)
	if f.Ser == proto.JSON {
		wantOp = OpText
	}
	if h.Op != wantOp {
		t.Fatalf("opcode %d", h.Op)
	}
	p := append([]byte(nil), b[n:]...)
	MaskBytes(p, h.Mask, 0)
	return p
}

func TestFrameHeaderSplit(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	for _, n := range []int{0, 125, 126, 65535, 65536, 1 << 20} {
		for _, m := range []*[4]byte{nil, &mask} {
			h := AppendFrameHeader(nil, OpBinary, n, m)
			for i := 0; i < len(h); i++ {
				if _, k, err := ParseFrameHeader(h[:i]); k != 0 || err != nil {
					t.Fatalf("n=%d: prefix %d parsed: %d %v", n, i, k, err)
				}
			}
			fh, k, err := ParseFrameHeader(h)
			if err != nil || k != len(h) || fh.Len != n || !fh.Fin || fh.Masked != (m != nil) {
				t.Fatalf("n=%d: %+v %d %v", n, fh, k, err)
			}
		}
	}
	big := AppendFrameHeader(nil, OpBinary, MaxFrame+1, nil)
	if _, _, err := ParseFrameHeader(big); err != ErrTooLarge {
		t.Fatalf("oversized frame: %v", err)
	}
}

func TestMaskPhase(t *testing.T) {
	key := [4]byte{9, 8, 7, 6}
	b := []byte("the quick brown fox jumps over the lazy dog")
	whole := append([]byte(nil), b...)
	MaskBytes(whole, key, 0)
	for split := 0; split <= len(b); split++ {
		p := append([]byte(nil), b...)
		MaskBytes(p[:split], key, 0)
		MaskBytes(p[split:], key, split)
		if !bytes.Equal(p, whole) {
			t.Fatalf("split %d differs", split)
		}
	}
}

func TestUpgrade(t *testing.T) {
	req := AppendUpgradeRequest(nil, "127.0.0.1:8080", "/ws", "dGhlIHNhbXBsZSBub25jZQ==", proto.MsgPack)
	for i := 0; i < len(req); i++ {
		if _, n, err := ParseUpgradeRequest(req[:i]); n != 0 || err != nil {
			t.Fatalf("prefix %d: %d %v", i, n, err)
		}
	}
	r, n, err := ParseUpgradeRequest(req)
	if err != nil || n != len(req) || string(r.Path) != "/ws" || string(r.Key) != "dGhlIHNhbXBsZSBub25jZQ==" {
		t.Fatalf("%+v %d %v", r, n, err)
	}
	ser, ok := ChooseSubprotocol([]byte("wamp.2.json.batched, wamp.2.cbor ,wamp.2.json"))
	if !ok || ser != proto.CBOR {
		t.Fatalf("ChooseSubprotocol = %v %v", ser, ok)
	}
	resp := AppendUpgradeResponse(nil, r.Key, proto.MsgPack)
	// RFC 6455 §1.3's example key and accept value.
	if !bytes.Contains(resp, []byte("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")) {
		t.Fatalf("accept key: %s", resp)
	}
	resp = append(resp, 0x82, 0)
	if n, err := ParseUpgradeResponse(resp, proto.MsgPack); err != nil || n != len(resp)-2 {
		t.Fatalf("response: %d %v", n, err)
	}
	if _, err := ParseUpgradeResponse(resp, proto.JSON); err == nil {
		t.Fatal("wrong subprotocol accepted")
	}
	if _, err := ParseUpgradeResponse([]byte("HTTP/1.1 503 Busy\r\n\r\n"), proto.JSON); err == nil {
		t.Fatal("503 accepted")
	}
}

func TestRawSocket(t *testing.T) {
	hs := RawHandshake(proto.CBOR, 0xf)
	if s, err := ParseRawHandshake(hs[:]); err != nil || s != proto.CBOR {
		t.Fatalf("%v %v", s, err)
	}
	if _, err := ParseRawHandshake([]byte{0x7f, 0x10, 0, 0}); err == nil { // error reply
		t.Fatal("error reply accepted")
	}
	h := AppendRawHeader(nil, RawPing, 0x123456)
	typ, n, ok, err := ParseRawHeader(h)
	if !ok || err != nil || typ != RawPing || n != 0x123456 {
		t.Fatalf("%d %d %v %v", typ, n, ok, err)
	}
	if _, _, ok, _ := ParseRawHeader(h[:3]); ok {
		t.Fatal("short header parsed")
	}
}

func TestScanAllocs(t *testing.T) {
	for _, ser := range sers {
		b := encode(t, ser, &proto.Message{Type: proto.CodeEvent, ID: 3, ID2: 4, Dict: mustValue(t, ser, richValue()), Args: mustValue(t, ser, []any{uint64(FixedMin), "x"})})
		if n := testing.AllocsPerRun(100, func() { Head(ser, b); EventStamp(ser, b) }); n != 0 {
			t.Errorf("%s: %v allocs", ser, n)
		}
	}
}

func BenchmarkHead(b *testing.B) {
	for _, ser := range sers {
		args, _ := proto.EncodeValue(ser, []any{string(bytes.Repeat([]byte("x"), 64))})
		msg, _ := proto.Append(nil, ser, &proto.Message{Type: proto.CodeResult, Request: FixedMin, Args: args})
		b.Run(ser.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Head(ser, msg)
			}
		})
	}
}
