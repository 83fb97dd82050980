package client

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// BenchmarkDecodePayload decodes a typical INVOCATION or RESULT payload
// (a few arguments and a small dictionary) as the reader does, within the
// default decode budget.
func BenchmarkDecodePayload(b *testing.B) {
	args := []any{int64(42), "com.example.sensor", 21.5, true}
	kwargs := map[string]any{"unit": "celsius", "ts": int64(1700000000), "tags": []any{"a", "b"}}
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		a, _ := proto.EncodeValue(ser, args)
		k, _ := proto.EncodeValue(ser, kwargs)
		m := &proto.Message{Type: proto.CodeResult, Request: 1, Args: a, Kwargs: k}
		n := len(a.B) + len(k.B) + 16
		s := &Session{cfg: Config{DecodeRatio: defaultDecodeRatio}}
		b.Run(ser.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := decodePayload(m, s.decodeBudget(n)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
