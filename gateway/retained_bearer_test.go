package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A retained event published with a bearer token whose revocation came
// after the request was authenticated, and whose walk of the retained
// events ran before the event was retained, is dropped all the same
// (recheckRetained): revocableVerifier verifies tok-a (as a verifier
// that checked it just before), its Withdrawn already says revoked, as
// after a revocation the router has walked. Another token of alice
// keeps its event. cmd's TestGatewayRetainedDroppedWhenTokenRevoked*
// cover the revocation itself.
func TestRetainedOfTokenRevokedInFlightDropped(t *testing.T) {
	laneFree(t)
	v := newRevocableVerifier()
	e := newEnv(t, func(o *Options) { o.Bearer = v })
	v.revoke("a")
	before := e.r.Stats().RetainedRevoked
	for _, p := range []struct{ topic, tok string }{{"com.a", "tok-a"}, {"com.b", "tok-b"}} {
		r, body := e.do("POST", "/wamp/realm1/publish/"+p.topic, `{"args":["retained"],"options":{"acknowledge":true,"retain":true}}`, "Authorization", "Bearer "+p.tok)
		if r.StatusCode != 200 {
			t.Fatalf("publish %s: %d %s", p.topic, r.StatusCode, body)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); e.r.Stats().RetainedRevoked == before && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	s := e.dial("realm1", proto.JSON)
	for _, c := range []struct {
		topic string
		kept  bool
	}{{"com.a", false}, {"com.b", true}} {
		got := make(chan *client.Event, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := s.Subscribe(ctx, c.topic, func(ev *client.Event) { got <- ev }, &client.SubscribeOptions{GetRetained: true}); err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case <-got:
			if !c.kept {
				t.Errorf("%s: the retained event of the token revoked during its request is delivered", c.topic)
			}
		case <-time.After(time.Second):
			if c.kept {
				t.Errorf("%s: the retained event of another token of the same principal was dropped", c.topic)
			}
		}
	}
}
