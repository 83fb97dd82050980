package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestSSEEventInPPTModeSaysSo: an EVENT in payload passthru mode
// (ppt_scheme in its Details: the router sends it to every subscriber,
// the gateway's sessions included) reaches an event stream, and a
// webhook, with its ppt_* keys in the document, so that the HTTP client
// can tell that its args are the passthru payload (an opaque, possibly
// encrypted, value serialized by ppt_serializer), not the publication's
// arguments.
func TestSSEEventInPPTModeSaysSo(t *testing.T) {
	laneFree(t)
	tgt := newWebhookTarget(t, "")
	e := newEnv(t, func(o *Options) {
		o.Webhooks = []Webhook{{Name: "ppt", Realm: "realm1", Topic: "com.ppt.news", URL: tgt.srv.URL}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsub := e.dial("realm1", proto.JSON)
	waitFor(t, "the webhook's subscription", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := wsub.Call(ctx, "wamp.subscription.match", []any{"com.ppt.news"}, nil, nil)
		return err == nil && len(res.Args) > 0 && res.Args[0] != nil
	})
	_, sse := e.stream(ctx, "GET", "/wamp/realm1/events/com.ppt.news", "")
	addr := strings.TrimSuffix(strings.TrimPrefix(e.wamp, "ws://"), "/ws")
	pub := dialRawJSON(t, addr)
	pub.send(proto.CodeHello, "realm1", map[string]any{"roles": map[string]any{"publisher": map[string]any{"features": map[string]any{"payload_passthru_mode": true}}}})
	if m := pub.recv(); m[0] != float64(proto.CodeWelcome) {
		t.Fatalf("got %v, want WELCOME", m)
	}
	pub.send(proto.CodePublish, 1, map[string]any{"acknowledge": true, "ppt_scheme": "x_custom", "ppt_serializer": "cbor", "ppt_cipher": "xsalsa20poly1305", "ppt_keyid": "k1"}, "com.ppt.news", []any{"\x00AQI="})
	if m := pub.recv(); m[0] != float64(proto.CodePublished) {
		t.Fatalf("got %v, want PUBLISHED", m)
	}
	ev, err := sse.next()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(ev.data), &doc); err != nil {
		t.Fatalf("%v: %s", err, ev.data)
	}
	var hit webhookHit
	select {
	case hit = <-tgt.got:
	case <-ctx.Done():
		t.Fatal("the webhook got nothing")
	}
	for k, want := range map[string]string{"ppt_scheme": "x_custom", "ppt_serializer": "cbor", "ppt_cipher": "xsalsa20poly1305", "ppt_keyid": "k1"} {
		if doc[k] != want {
			t.Errorf("event stream: %s = %v, want %q: %s", k, doc[k], want, ev.data)
		}
		if hit.body[k] != want {
			t.Errorf("webhook: %s = %v, want %q: %v", k, hit.body[k], want, hit.body)
		}
	}
	// An event not in the mode has none.
	pub.send(proto.CodePublish, 2, map[string]any{"acknowledge": true}, "com.ppt.news", []any{"plain"})
	if m := pub.recv(); m[0] != float64(proto.CodePublished) {
		t.Fatalf("got %v, want PUBLISHED", m)
	}
	if ev, err = sse.next(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ev.data, "ppt_") || !strings.Contains(ev.data, `"plain"`) {
		t.Fatalf("a plain event: %s", ev.data)
	}
}
