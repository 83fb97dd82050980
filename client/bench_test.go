package client

import (
	"context"
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

// BenchmarkClientCallee runs a Client callee's invocation path end to end,
// through a router on 127.0.0.1: a Session calls, one call at a time, a
// procedure the Client registered. Each invocation runs its Handler on a
// goroutine of its own; what that costs, and allocates, is counted here
// with the router's and the caller's share.
func BenchmarkClientCallee(b *testing.B) {
	url := startRouter(b)
	ctx := context.Background()
	cl, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack}, ReconnectConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Register(ctx, "com.bench", func(context.Context, *Invocation) (*Result, error) {
		return &Result{}, nil
	}, nil); err != nil {
		b.Fatal(err)
	}
	caller, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack})
	if err != nil {
		b.Fatal(err)
	}
	defer caller.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := caller.Call(ctx, "com.bench", nil, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
