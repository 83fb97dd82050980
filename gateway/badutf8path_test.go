package gateway

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A bridge call's procedure comes from the URL path, percent-unescaped:
// /wamp/realm1/call/com.x%FF names "com.x\xff", not UTF-8 text. The router
// refuses such a URI from a WebSocket or RawSocket peer when it decodes
// it (581d0ae: invalid_uri in every codec), but the gateway hands its
// CALL in-process, past the decoder: a prefix registration "com." matched
// it and its callee got an INVOCATION whose details.procedure was not
// UTF-8, which a MsgPack callee's decoder refuses (the Go client's ended
// the session: every other call it served was lost with it).
func TestBridgeCallPathNotUTF8IsInvalidURI(t *testing.T) {
	e := newEnv(t, nil)
	for _, ser := range []proto.Serializer{proto.MsgPack, proto.JSON} {
		callee := e.dial("realm1", ser)
		var got atomic.Int32
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		reg, err := callee.Register(ctx, "com.", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
			got.Add(1)
			return &client.Result{}, nil
		}, &client.RegisterOptions{Match: "prefix"})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"com.x%FF", "com.x%ED%A0%80", "com.%C3"} {
			resp, body := e.do("POST", "/wamp/realm1/call/"+p, `{}`)
			if resp.StatusCode == 200 || !strings.Contains(string(body), "invalid_uri") {
				t.Errorf("%v callee: POST %s: %d %s, want wamp.error.invalid_uri", ser, p, resp.StatusCode, body)
			}
		}
		// The callee still serves a call.
		resp, body := e.do("POST", "/wamp/realm1/call/com.ok", `{}`)
		if resp.StatusCode != 200 {
			t.Errorf("%v callee: POST com.ok after them: %d %s", ser, resp.StatusCode, body)
		}
		if n := got.Load(); n != 1 {
			t.Errorf("%v callee: %d invocations, want 1 (com.ok)", ser, n)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		callee.Unregister(ctx, reg)
		cancel()
	}
	// A publication's topic likewise: a prefix subscriber over MsgPack
	// got an EVENT whose details.topic it could not decode.
	sub := e.dial("realm1", proto.MsgPack)
	events := make(chan string, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, "com.", func(ev *client.Event) {
		topic, _ := ev.Details["topic"].(string)
		events <- topic
	}, &client.SubscribeOptions{Match: "prefix"}); err != nil {
		t.Fatal(err)
	}
	resp, body := e.do("POST", "/wamp/realm1/publish/com.x%FF", `{"options":{"acknowledge":true}}`)
	if resp.StatusCode == 200 || !strings.Contains(string(body), "invalid_uri") {
		t.Errorf("POST publish/com.x%%FF: %d %s, want wamp.error.invalid_uri", resp.StatusCode, body)
	}
	e.do("POST", "/wamp/realm1/publish/com.y%FF", `{}`)
	if resp, body := e.do("POST", "/wamp/realm1/publish/com.ok", `{"options":{"acknowledge":true}}`); resp.StatusCode != 200 {
		t.Fatalf("POST publish/com.ok: %d %s", resp.StatusCode, body)
	}
	select {
	case topic := <-events:
		if topic != "com.ok" {
			t.Errorf("the subscriber got an event of %q first, want com.ok", topic)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the subscriber got no event of com.ok (its session: %v)", sub.Err())
	}
}
