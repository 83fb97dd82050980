package client

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A proto.Raw of another serializer in a payload (a JSON body passed on as
// it came, on a MsgPack or CBOR session) is transcoded by the client, and
// the transcoder checks what the router refuses (invalid UTF-8, keys that
// are not strings, nesting) but not a key "__proto__", which every decoder
// of proto refuses: the client sent it and the router ended the session
// (ABORT wamp.error.protocol_violation), registrations and subscriptions
// with it. Now Publish and Call return the encoding error, and the session
// goes on.
func TestProtoKeyInRawRefusedBeforeSending(t *testing.T) {
	url := startRouter(t)
	for _, ser := range []proto.Serializer{proto.MsgPack, proto.CBOR} {
		t.Run(ser.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: ser})
			noErr(t, "Dial", err)
			t.Cleanup(func() { s.Close() })
			for _, body := range []string{`{"__proto__":{"admin":true}}`, `{"a":[{"\u005f_proto__":1}]}`} {
				args := []any{proto.Raw{Ser: proto.JSON, B: []byte(body)}}
				err := s.Publish(ctx, "com.example.topic", args, nil, &PublishOptions{Acknowledge: true})
				if err == nil {
					t.Fatalf("%s: Publish returned no error", body)
				}
				if _, ok := err.(*Error); ok {
					t.Fatalf("%s: Publish was sent and refused by the router: %v", body, err)
				}
			}
			select {
			case <-s.Done():
				t.Fatalf("session ended: %v", s.Err())
			default:
			}
			err = s.Publish(ctx, "com.example.topic", []any{proto.Raw{Ser: proto.JSON, B: []byte(`{"proto":1}`)}}, nil, &PublishOptions{Acknowledge: true})
			noErr(t, "Publish of a valid payload", err)
		})
	}
}
