package proto

import (
	"bytes"
	"fmt"
	"testing"
)

// Micro-benchmarks of the hot path and of transcoding. Reused Decoder,
// Message, Encoder and output buffer throughout, as an event loop keeps
// them. Compare runs with benchstat.

var benchSizes = []int{64, 4096}

// routingFixture holds the reused state of one event loop's hot path: a
// Decoder, a Message for the inbound message, a Message for the outbound
// one, an Encoder and an output buffer.
type routingFixture struct {
	d   Decoder
	in  Message
	out Message
	e   Encoder
	buf []byte
}

// callBytes returns a CALL with options and a raw payload in ser.
func callBytes(t testing.TB, ser Serializer, payload int) []byte {
	t.Helper()
	m := &Message{Type: CodeCall, Request: 7814135, URI: []byte("com.myapp.myprocedure1")}
	m.Opt.SetBool(KeyReceiveProgress, true)
	m.Opt.SetUint(KeyTimeout, 1000)
	m.Opt.SetBool(KeyDiscloseMe, true)
	m.Dict = mustEncodeValue(t, ser, map[string]any{
		"receive_progress": true, "timeout": int64(1000), "disclose_me": true, "x_trace": "abc"})
	m.Args = mustEncodeValue(t, ser, []any{"Hello, world!", int64(42), 1.5, []byte("bin"), payloadString(payload)})
	m.Kwargs = mustEncodeValue(t, ser, map[string]any{"name": "edgewamp", "list": []any{int64(1), int64(2)}})
	return mustAppend(t, ser, m)
}

// transparentCallBytes returns an end-to-end encrypted CALL: Payload
// Passthru Mode keys and a binary payload.
func transparentCallBytes(t testing.TB, ser Serializer, payload int) []byte {
	t.Helper()
	m := &Message{Type: CodeCall, Request: 7814135, URI: []byte("com.myapp.secret")}
	m.Dict = mustEncodeValue(t, ser, map[string]any{
		"enc_algo": "cryptobox", "enc_serializer": "cbor", "ppt_scheme": "wamp", "ppt_keyid": "k1"})
	m.Args, m.Transparent = mustEncodeValue(t, ser, []byte(payloadString(payload))), true
	return mustAppend(t, ser, m)
}

// publishBytes returns a PUBLISH with options and a raw payload in ser.
func publishBytes(t testing.TB, ser Serializer, payload int) []byte {
	t.Helper()
	m := &Message{Type: CodePublish, Request: 239714735, URI: []byte("com.myapp.mytopic1")}
	m.Dict = mustEncodeValue(t, ser, map[string]any{
		"acknowledge": true, "exclude_me": false, "disclose_me": true, "exclude": []any{int64(1), int64(2)},
		"eligible_authrole": []any{"user"}})
	m.Args = mustEncodeValue(t, ser, []any{"Hello, world!", payloadString(payload)})
	m.Kwargs = mustEncodeValue(t, ser, map[string]any{"count": int64(5)})
	return mustAppend(t, ser, m)
}

func payloadString(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return string(b)
}

// invocation builds the INVOCATION for the decoded CALL in f.in, the way
// the dealer does: new Details, payload passed through.
func (f *routingFixture) invocation() {
	f.out.Reset()
	f.out.Type = CodeInvocation
	f.out.Request = 6131533
	f.out.ID = 9823526
	f.out.Opt.SetBool(KeyReceiveProgress, f.in.Opt.Bool(KeyReceiveProgress, false))
	f.out.Opt.SetUint(KeyCaller, 3335656)
	f.out.Opt.SetStr(KeyProcedure, f.in.URI)
	f.out.Opt.SetString(KeyCallerAuthRole, "user")
	if f.in.Opt.Has(KeyTimeout) {
		f.out.Opt.SetUint(KeyTimeout, f.in.Opt.Uint(KeyTimeout))
	}
	f.out.Opt.CopyPPT(&f.in.Opt)
	f.out.Args, f.out.Kwargs, f.out.Transparent = f.in.Args, f.in.Kwargs, f.in.Transparent
}

// event builds the EVENT for the decoded PUBLISH in f.in, the way the
// broker does.
func (f *routingFixture) event() {
	f.out.Reset()
	f.out.Type = CodeEvent
	f.out.ID = 5512315355
	f.out.ID2 = 4429313566
	if f.in.Opt.Bool(KeyDiscloseMe, false) {
		f.out.Opt.SetUint(KeyPublisher, 3335656)
	}
	f.out.Opt.SetStr(KeyTopic, f.in.URI)
	f.out.Opt.CopyPPT(&f.in.Opt)
	f.out.Args, f.out.Kwargs, f.out.Transparent = f.in.Args, f.in.Kwargs, f.in.Transparent
}

var sinkValid bool

// BenchmarkValidURI checks a typical loose URI, as every CALL and PUBLISH
// is checked.
func BenchmarkValidURI(b *testing.B) {
	u := []byte("com.example.sensors.temperature.read_value")
	for b.Loop() {
		sinkValid = ValidURI(u, URILoose)
	}
}

// BenchmarkDecodeCall decodes a CALL head (options parsed, payload kept
// raw).
func BenchmarkDecodeCall(b *testing.B) {
	for _, ser := range serializers {
		for _, n := range benchSizes {
			in := callBytes(b, ser, n)
			b.Run(fmt.Sprintf("%s/msgSz=%d", ser, len(in)), func(b *testing.B) {
				var d Decoder
				var m Message
				b.ReportAllocs()
				b.SetBytes(int64(len(in)))
				for b.Loop() {
					if err := d.Decode(ser, in, &m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDecodeTransparentCall decodes an end-to-end encrypted CALL
// (Payload Passthru Mode): a binary payload, in JSON a "\u0000"+base64
// string whose base64 the scan checks.
func BenchmarkDecodeTransparentCall(b *testing.B) {
	for _, ser := range serializers {
		for _, n := range benchSizes {
			in := transparentCallBytes(b, ser, n)
			b.Run(fmt.Sprintf("%s/msgSz=%d", ser, len(in)), func(b *testing.B) {
				var d Decoder
				var m Message
				b.ReportAllocs()
				b.SetBytes(int64(len(in)))
				for b.Loop() {
					if err := d.Decode(ser, in, &m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkEncodeInvocation builds and encodes the INVOCATION for a decoded
// CALL in the same serializer (payload copied as is).
func BenchmarkEncodeInvocation(b *testing.B) {
	for _, ser := range serializers {
		for _, n := range benchSizes {
			f := &routingFixture{buf: make([]byte, 0, 8192)}
			if err := f.d.Decode(ser, callBytes(b, ser, n), &f.in); err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/payload=%d", ser, n), func(b *testing.B) {
				var err error
				b.ReportAllocs()
				for b.Loop() {
					f.invocation()
					if f.buf, err = f.e.Append(f.buf[:0], ser, &f.out); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(len(f.buf)))
			})
		}
	}
}

// BenchmarkPublishEvent decodes a PUBLISH and encodes the EVENT, in the
// same serializer and into each other one (the payload transcoded).
func BenchmarkPublishEvent(b *testing.B) {
	for _, from := range serializers {
		for _, to := range serializers {
			for _, n := range benchSizes {
				in := publishBytes(b, from, n)
				b.Run(fmt.Sprintf("%s-%s/msgSz=%d", from, to, len(in)), func(b *testing.B) {
					f := &routingFixture{buf: make([]byte, 0, 16384)}
					var err error
					b.ReportAllocs()
					b.SetBytes(int64(len(in)))
					for b.Loop() {
						if err = f.d.Decode(from, in, &f.in); err != nil {
							b.Fatal(err)
						}
						f.event()
						if f.buf, err = f.e.Append(f.buf[:0], to, &f.out); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// BenchmarkTranscode converts a 64 B and a 4 KiB Arguments list between
// serializers, through an Encoder as the router does (Transcode itself
// allocates its scratch per call).
func BenchmarkTranscode(b *testing.B) {
	pairs := [][2]Serializer{{JSON, MsgPack}, {MsgPack, JSON}, {JSON, CBOR}, {CBOR, JSON}, {MsgPack, CBOR}, {CBOR, MsgPack}}
	for _, p := range pairs {
		for _, n := range []int{64, 4096} {
			src := transcodePayload(b, p[0], n)
			b.Run(fmt.Sprintf("%s-%s/payload=%d", p[0], p[1], len(src.B)), func(b *testing.B) {
				m := &Message{Type: CodeResult, Request: 1, Args: src}
				var e Encoder
				buf := make([]byte, 0, 16384)
				var err error
				b.ReportAllocs()
				b.SetBytes(int64(len(src.B)))
				for b.Loop() {
					if buf, err = e.Append(buf[:0], p[1], m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// transcodePayload returns an Arguments list in ser: a 64-byte (in JSON)
// list for n <= 64, else a realistic mix of about n bytes: dicts of
// strings, integers, floats and bools, and binary values.
func transcodePayload(b *testing.B, ser Serializer, n int) Raw {
	b.Helper()
	if n <= 64 {
		return mustEncodeValue(b, ser, []any{"Hello, world!", int64(42), 1.5, []byte("binary"), "abcdefghijklmn", true})
	}
	var args []any
	for i := 0; ; i++ {
		args = append(args, map[string]any{"id": int64(i * 7919), "name": fmt.Sprintf("sensor-%d", i),
			"v": float64(i) + 0.25, "ok": i%2 == 0})
		if i%8 == 7 {
			args = append(args, []byte("raw-bytes"))
		}
		if r := mustEncodeValue(b, ser, args); len(r.B) >= n {
			return r
		}
	}
}

// BenchmarkTranscodeDeep converts a JSON value nested MaxDepth levels deep
// around a 4 KiB list into MsgPack: with lengths unknown up front, the cost
// must stay linear in the input, not grow with depth × size.
func BenchmarkTranscodeDeep(b *testing.B) {
	leaf := transcodePayload(b, JSON, 4096).B
	in := append(bytes.Repeat([]byte{'['}, MaxDepth-2), leaf...)
	in = append(in, bytes.Repeat([]byte{']'}, MaxDepth-2)...)
	for _, to := range []Serializer{MsgPack, CBOR} {
		b.Run(fmt.Sprintf("json-%s/depth=%d", to, MaxDepth), func(b *testing.B) {
			m := &Message{Type: CodeResult, Request: 1, Args: Raw{Ser: JSON, B: in}}
			var e Encoder
			buf := make([]byte, 0, 16384)
			var err error
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if buf, err = e.Append(buf[:0], to, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeCallURI decodes a small JSON CALL whose procedure has no
// escape (the usual case: the lone-surrogate check does not run) and one
// with escapes (jsonLoneSurrogate reads the escaped text once more), and a
// MsgPack one (its utf8.Valid predates the check).
func BenchmarkDecodeCallURI(b *testing.B) {
	for _, c := range []struct {
		name string
		ser  Serializer
		in   []byte
	}{
		{"json/plain", JSON, []byte(`[48,7,{},"com.example.device.read",[1]]`)},
		{"json/escaped", JSON, []byte(`[48,7,{},"com.example.d\u00e9vice.\ud83d\ude00",[1]]`)},
		{"msgpack/plain", MsgPack, append([]byte{0x95, 0x30, 0x07, 0x80, 0xb5}, append([]byte("com.example.device.rd"), 0x91, 0x01)...)},
	} {
		b.Run(c.name, func(b *testing.B) {
			var d Decoder
			var m Message
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Decode(c.ser, c.in, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
