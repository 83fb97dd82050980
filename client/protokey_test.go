package client

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A dictionary key "__proto__" in a payload is refused by the router,
// which ends the session (ABORT wamp.error.protocol_violation): JavaScript
// peers cannot take it. The client checked every other thing the router
// refuses in a payload before sending it (invalid UTF-8, a JSON text
// starting with NUL, nesting past proto.MaxDepth) and returned an error
// from Publish or Call, but wrote this one, so that an application passing
// on a dictionary it was given (a web form's JSON) lost its session, its
// registrations and subscriptions with it. Now Publish and Call return the
// encoding error, and the session goes on.
func TestProtoKeyRefusedBeforeSending(t *testing.T) {
	url := startRouter(t)
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		t.Run(ser.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: ser})
			noErr(t, "Dial", err)
			t.Cleanup(func() { s.Close() })
			bad := []struct {
				name   string
				args   []any
				kwargs map[string]any
			}{
				{"kwargs", nil, map[string]any{"__proto__": 1}},
				{"nested in args", []any{map[string]any{"a": map[string]any{"__proto__": map[string]any{}}}}, nil},
				{"string map", []any{map[string]string{"__proto__": "x"}}, nil},
			}
			for _, b := range bad {
				err := s.Publish(ctx, "com.example.topic", b.args, b.kwargs, &PublishOptions{Acknowledge: true})
				if err == nil {
					t.Fatalf("%s: Publish returned no error", b.name)
				}
				if _, ok := err.(*Error); ok {
					t.Fatalf("%s: Publish was sent and refused by the router: %v", b.name, err)
				}
				if _, err := s.Call(ctx, "com.example.nothing", b.args, b.kwargs, nil); err == nil {
					t.Fatalf("%s: Call returned no error", b.name)
				}
			}
			// The session is still there: an acknowledged publication of
			// a valid payload is answered.
			select {
			case <-s.Done():
				t.Fatalf("session ended: %v", s.Err())
			default:
			}
			err = s.Publish(ctx, "com.example.topic", []any{map[string]any{"proto": 1}}, nil, &PublishOptions{Acknowledge: true})
			noErr(t, "Publish of a valid payload", err)
		})
	}
}
