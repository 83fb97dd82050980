package client

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A CBOR publisher's -2^8192 (tag 3 over 1024 bytes of 0xff, what the
// client itself wrote for that *big.Int until it refused it) reached JSON subscribers as
// 2,467 digits, one past what proto's JSON reader takes: the Go client's
// reader refused the EVENT and ended its session as a protocol violation.
// Any peer allowed to publish on a topic could so end every Go JSON
// subscriber's session, registrations and subscriptions with it (and a
// CBOR callee its JSON caller's, a CBOR caller its JSON callee's). Now the
// router cannot convert it for JSON and does not send it there, and the
// subscriber goes on.
func TestNegativeBignumDoesNotEndJSONSubscriber(t *testing.T) {
	url := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.JSON})
	noErr(t, "Dial JSON", err)
	t.Cleanup(func() { sub.Close() })
	pub, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.CBOR})
	noErr(t, "Dial CBOR", err)
	t.Cleanup(func() { pub.Close() })

	got := make(chan *Event, 4)
	_, err = sub.Subscribe(ctx, "com.example.big", func(e *Event) { got <- e }, nil)
	noErr(t, "Subscribe", err)

	// -2^8192: [tag 3 over 1024 bytes of 0xff]. The client's encoder no
	// longer writes it (TestCBORBignumRoundTrip), so it is sent raw, as
	// another CBOR peer would.
	huge := append([]byte{0x81, 0xc3, 0x59, 0x04, 0x00}, bytes.Repeat([]byte{0xff}, 1024)...)
	raw := &proto.Message{Type: proto.CodePublish, Request: 1 << 40, URI: []byte("com.example.big"), Args: proto.Raw{Ser: proto.CBOR, B: huge}}
	noErr(t, "Publish -2^8192", pub.SendRaw(raw))
	noErr(t, "Publish 1", pub.Publish(ctx, "com.example.big", []any{1}, nil, &PublishOptions{Acknowledge: true}))
	select {
	case e := <-got:
		if len(e.Args) != 1 || e.Args[0] != int64(1) {
			t.Fatalf("first event the subscriber got: %v, want [1] (the huge one not convertible for it)", e.Args)
		}
	case <-sub.Done():
		t.Fatalf("the JSON subscriber's session ended: %v", sub.Err())
	case <-ctx.Done():
		t.Fatal("no event")
	}
	select {
	case <-sub.Done():
		t.Fatalf("the JSON subscriber's session ended: %v", sub.Err())
	default:
	}
}
