package proto

import (
	"strings"
	"testing"
)

// A JSON \u escape of a lone surrogate was unescaped to U+FFFD in URIs as
// in payloads, so "com.x\ud800" and "com.x\udc00" were one topic,
// procedure or realm (and "a\ud800", "a\udc00" one authid): a peer could
// register or subscribe under a name another peer wrote differently. Now
// a URI element that is not UTF-8 text (a lone surrogate escape in JSON,
// invalid UTF-8 in MsgPack and CBOR) decodes with its URI nil and
// ErrBadURIText, the rest of the message decoded (the router answers
// wamp.error.invalid_uri); a string option (authid) or a Signature with
// one is refused outright. Payloads keep their U+FFFD.
func TestURILoneSurrogateRefused(t *testing.T) {
	cases := []struct {
		name string
		ser  Serializer
		in   []byte
	}{
		{"json high alone", JSON, []byte(`[48,7,{},"com.x\ud800",["a"]]`)},
		{"json low alone", JSON, []byte(`[48,7,{},"com.x\udc00",["a"]]`)},
		{"json high then text", JSON, []byte(`[48,7,{},"com.x\uD800y",["a"]]`)},
		{"json high then non-surrogate escape", JSON, []byte(`[48,7,{},"com.x\ud800\u0041",["a"]]`)},
		{"json two highs", JSON, []byte(`[48,7,{},"com.x\ud800\ud800",["a"]]`)},
		{"json high at the end after a pair", JSON, []byte(`[48,7,{},"com.\ud83d\ude00\ud83d",["a"]]`)},
		{"msgpack invalid utf-8", MsgPack, append([]byte{0x95, 0x30, 0x07, 0x80, 0xa6, 'c', 'o', 'm', '.', 'x', 0xff}, 0x91, 0xa1, 'a')},
		{"cbor invalid utf-8", CBOR, append([]byte{0x85, 0x18, 0x30, 0x07, 0xa0, 0x66, 'c', 'o', 'm', '.', 'x', 0xff}, 0x81, 0x61, 'a')},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d Decoder
			var m Message
			err := d.Decode(c.ser, c.in, &m)
			if err != ErrBadURIText {
				t.Fatalf("Decode: %v (URI %q), want ErrBadURIText", err, m.URI)
			}
			if m.Type != CodeCall || m.Request != 7 || m.URI != nil || len(m.Args.B) == 0 {
				t.Fatalf("the message around the URI is not decoded: type %v request %d URI %q args %d bytes", m.Type, m.Request, m.URI, len(m.Args.B))
			}
		})
	}
	t.Run("hello realm", func(t *testing.T) {
		var m Message
		var d Decoder
		if err := d.Decode(JSON, []byte(`[1,"realm\udc00",{"roles":{"caller":{}}}]`), &m); err != ErrBadURIText || m.URI != nil {
			t.Fatalf("Decode: %v (realm %q), want ErrBadURIText", err, m.URI)
		}
	})
	t.Run("hello authid", func(t *testing.T) {
		_, err := Decode(JSON, []byte(`[1,"realm1",{"authid":"a\ud800","roles":{"caller":{}}}]`))
		if err == nil || !strings.Contains(err.Error(), "authid") || !strings.Contains(err.Error(), "surrogate") {
			t.Fatalf("Decode of a HELLO whose authid holds a lone surrogate: %v", err)
		}
	})
	t.Run("signature", func(t *testing.T) {
		if _, err := Decode(JSON, []byte(`[5,"ticket\ud800",{}]`)); err != ErrBadUTF8 {
			t.Fatalf("Decode of an AUTHENTICATE whose signature holds a lone surrogate: %v", err)
		}
	})
	for _, ok := range []struct{ in, uri string }{
		{`[48,7,{},"com.\ud83d\ude00",["a\ud800"]]`, "com.\U0001F600"}, // a pair; the payload's lone half kept
		{`[48,7,{},"com.x\\ud800",[]]`, `com.x\ud800`},                 // an escaped backslash, then text
		{`[48,7,{},"com.\u0078",[]]`, "com.x"},
	} {
		m, err := Decode(JSON, []byte(ok.in))
		if err != nil || string(m.URI) != ok.uri {
			t.Errorf("Decode(%s): %v, URI %q, want %q", ok.in, err, m.URI, ok.uri)
		}
	}
}
