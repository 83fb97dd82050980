package proto

import (
	"fmt"
	"strings"
	"testing"
)

// A payload dictionary key "__proto__" is refused as a key that is not a
// string is, in every serializer, in Arguments and ArgumentsKw of every
// message that carries them, however deep, and however the key is written
// (JSON escapes, CBOR chunks): msgpack5 (Autobahn|JS's MsgPack) throws on
// it from the WebSocket's message handler, which ends the peer's Node
// process, and other JavaScript decoders drop the member or take it for
// the object's prototype. Keys that only look like it pass.
func TestProtoKeyRefused(t *testing.T) {
	// keyed returns a dictionary {KEY: 1} with the key written as form
	// says, in ser.
	keyed := func(ser Serializer, form, key string) []byte {
		w := wr{ser: ser}
		switch {
		case ser == JSON && form == "escaped":
			return []byte(`{"\u005f_` + key[2:] + `":1}`)
		case ser == CBOR && form == "chunked":
			w.b = append(w.b, 0xa1, 0x7f)
			for _, part := range []string{key[:2], "", key[2:]} {
				w.cbHead(3, uint64(len(part)))
				w.b = append(w.b, part...)
			}
			w.b = append(w.b, 0xff, 0x01)
			return w.b
		}
		w.mapH(1)
		_ = w.strS(key)
		w.colon()
		w.uint(1)
		w.endMap()
		return w.b
	}
	type pos struct {
		name string
		// args and kwargs around the dictionary d (nil: absent)
		wrap func(ser Serializer, d []byte) (args, kwargs []byte)
	}
	list := func(ser Serializer, d []byte) []byte {
		w := wr{ser: ser}
		w.arr(2)
		w.uint(7)
		w.comma()
		w.b = append(w.b, d...)
		w.endArr()
		return w.b
	}
	dict := func(ser Serializer, d []byte) []byte {
		w := wr{ser: ser}
		w.mapH(1)
		_ = w.strS("a")
		w.colon()
		w.b = append(w.b, d...)
		w.endMap()
		return w.b
	}
	empty := func(ser Serializer) []byte { w := wr{ser: ser}; w.arr(0); w.endArr(); return w.b }
	positions := []pos{
		{"ArgumentsKw", func(ser Serializer, d []byte) ([]byte, []byte) { return empty(ser), d }},
		{"in ArgumentsKw", func(ser Serializer, d []byte) ([]byte, []byte) { return empty(ser), dict(ser, d) }},
		{"in Arguments", func(ser Serializer, d []byte) ([]byte, []byte) { return list(ser, d), nil }},
		{"deep in Arguments", func(ser Serializer, d []byte) ([]byte, []byte) {
			return list(ser, dict(ser, list(ser, dict(ser, d)))), nil
		}},
	}
	msgs := []*Message{
		{Type: CodePublish, Request: 1, URI: []byte("t")},
		{Type: CodeEvent, ID: 1, ID2: 2},
		{Type: CodeCall, Request: 1, URI: []byte("p")},
		{Type: CodeInvocation, Request: 1, ID: 2},
		{Type: CodeYield, Request: 1},
		{Type: CodeResult, Request: 1},
		{Type: CodeError, ReqType: CodeCall, Request: 1, URI: []byte("e")},
		{Type: CodeError, ReqType: CodeInvocation, Request: 1, URI: []byte("e")},
	}
	for _, ser := range serializers {
		forms := []string{"plain"}
		switch ser {
		case JSON:
			forms = append(forms, "escaped")
		case CBOR:
			forms = append(forms, "chunked")
		}
		for _, form := range forms {
			for _, key := range []string{"__proto__", "__proto_", "__proto__x", "_proto__", "constructor", "prototype", "__PROTO__"} {
				bad := key == "__proto__"
				if form != "plain" && !strings.HasPrefix(key, "__") {
					continue
				}
				d := keyed(ser, form, key)
				for _, p := range positions {
					args, kwargs := p.wrap(ser, d)
					what := fmt.Sprintf("%s %s key %q %s", ser, form, key, p.name)
					a, k := Raw{Ser: ser, B: args}, Raw{Ser: ser, B: kwargs}
					if ok := ValidArgs(a, false) && (kwargs == nil || ValidKwargs(k)); ok == bad {
						t.Errorf("%s: ValidArgs, ValidKwargs %v", what, ok)
					}
					for _, m := range msgs {
						m.Args = a
						m.Kwargs = Raw{}
						if kwargs != nil {
							m.Kwargs = k
						}
						b, err := Append(nil, ser, m)
						if err != nil {
							t.Fatalf("%s: %v", what, err)
						}
						_, err = Decode(ser, b)
						switch {
						case bad:
							requireTypedError(t, err, ErrKeyNotString, what+" in "+m.Type.String())
						case err != nil:
							t.Errorf("%s in %s: %v", what, m.Type, err)
						}
						// A Decoder with TakeProtoKey (the Go client's)
						// takes it, and tells.
						dec, got := Decoder{TakeProtoKey: true}, Message{}
						if err := dec.Decode(ser, b, &got); err != nil {
							t.Errorf("%s in %s, TakeProtoKey: %v", what, m.Type, err)
						} else if dict, payload := dec.ProtoKey(); dict || payload != bad {
							t.Errorf("%s in %s, TakeProtoKey: ProtoKey() %v, %v; want false, %v", what, m.Type, dict, payload, bad)
						}
					}
				}
			}
		}
	}
}

// Below the top level of a message's dictionary (Options, Details, Extra)
// the key is refused too; a Decoder with TakeProtoKey takes it there and
// tells it apart from one in the payload. A key that is not a string, or
// a message with an element too many, is refused by both.
func TestTakeProtoKeyInDict(t *testing.T) {
	for _, ser := range serializers {
		nested := mustEncodeValue(t, ser, map[string]any{"a": map[string]any{"__prot0__": 1}, "__prot0__": 2})
		nested.B = []byte(strings.ReplaceAll(string(nested.B), "__prot0__", "__proto__"))
		m := &Message{Type: CodeEvent, ID: 1, ID2: 2, Dict: nested, Args: mustEncodeValue(t, ser, []any{1})}
		b := mustAppend(t, ser, m)
		_, err := Decode(ser, b)
		requireTypedError(t, err, ErrKeyNotString, ser.String()+" nested in Details")
		dec, got := Decoder{TakeProtoKey: true}, Message{}
		requireNoError(t, dec.Decode(ser, b, &got), ser.String()+" nested in Details, TakeProtoKey")
		if dict, payload := dec.ProtoKey(); !dict || payload {
			t.Errorf("%s: ProtoKey() %v, %v; want true, false", ser, dict, payload)
		}
		requireValue(t, []any{int64(1)}, mustValue(t, got.Args), ser.String()+" Arguments")
		// The next message, without the key, is told so.
		requireNoError(t, dec.Decode(ser, mustAppend(t, ser, &Message{Type: CodeEvent, ID: 1, ID2: 3}), &got), ser.String()+" next")
		if dict, payload := dec.ProtoKey(); dict || payload {
			t.Errorf("%s: next message: ProtoKey() %v, %v", ser, dict, payload)
		}
	}
	bad := []struct {
		name string
		ser  Serializer
		b    []byte
	}{
		{"element more", JSON, []byte(`[36,1,2,{"x":{"__proto__":1}},[],{"__proto__":1},7]`)},
		{"binary key", JSON, []byte(`[36,1,2,{},[{"__proto__":1,"\u0000AA==":1}]]`)},
		// [36,1,2,{},[{"__proto__":1,1:2}]]
		{"integer key", MsgPack, append(append([]byte{0x95, 0x24, 0x01, 0x02, 0x80, 0x91, 0x82, 0xa9}, "__proto__"...), 0x01, 0x01, 0x02)},
	}
	for _, c := range bad {
		dec, got := Decoder{TakeProtoKey: true}, Message{}
		err := dec.Decode(c.ser, c.b, &got)
		if err == nil {
			t.Errorf("%s: %s decoded with TakeProtoKey", c.name, show(c.ser, c.b))
		}
	}
}

// AppendValue refuses a dictionary key "__proto__", as every decoder of
// the package refuses it in a payload: what it writes for the Go client
// (and the router's own generic values) is then what the router accepts.
func TestAppendValueRefusesProtoKey(t *testing.T) {
	for _, ser := range serializers {
		for _, v := range []any{
			map[string]any{"__proto__": 1},
			map[string]string{"a": "b", "__proto__": "c"},
			[]any{1, map[string]any{"x": []any{map[string]any{"__proto__": nil}}}},
		} {
			if b, err := AppendValue(nil, ser, v); err != ErrKeyNotString {
				t.Errorf("%s: AppendValue(%v) = %x, %v; want ErrKeyNotString", ser, v, b, err)
			}
		}
		if _, err := AppendValue(nil, ser, map[string]any{"__proto": 1, "__proto__x": 2, "_proto_": 3}); err != nil {
			t.Errorf("%s: keys near __proto__ refused: %v", ser, err)
		}
	}
}

// Transcode, and AppendValue's Raw of another serializer, refuse a key
// "__proto__" (escaped in JSON, in chunks in CBOR too), as every decoder
// of the package does: before, the transcoder checked keys' type and UTF-8
// only, and wrote it.
func TestTranscodeRefusesProtoKey(t *testing.T) {
	srcs := []Raw{
		{Ser: JSON, B: []byte(`{"__proto__":1}`)},
		{Ser: JSON, B: []byte(`[1,{"x":{"\u005f_proto__":[]}}]`)},
		{Ser: MsgPack, B: []byte("\x81\xa9__proto__\x01")},
		{Ser: CBOR, B: []byte("\xa1i__proto__\x01")},
		{Ser: CBOR, B: []byte("\xa1\x7f\x64__pr\x65oto__\xff\x01")}, // in chunks: "__pr", "oto__"
	}
	for _, src := range srcs {
		for _, to := range serializers {
			if to == src.Ser {
				continue
			}
			if b, err := Transcode(nil, to, src); err != ErrKeyNotString {
				t.Errorf("Transcode %s %q to %s = %q, %v; want ErrKeyNotString", src.Ser, src.B, to, b, err)
			}
			if b, err := AppendValue(nil, to, []any{src}); err != ErrKeyNotString {
				t.Errorf("AppendValue(Raw %s %q) in %s = %q, %v; want ErrKeyNotString", src.Ser, src.B, to, b, err)
			}
		}
	}
	if _, err := Transcode(nil, MsgPack, Raw{Ser: JSON, B: []byte(`{"__proto":1,"__proto__x":2}`)}); err != nil {
		t.Errorf("keys near __proto__ refused: %v", err)
	}
}
