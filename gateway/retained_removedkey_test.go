package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A retained event speaks for its publisher after the publication
// (README, Reload): one published through the gateway with an API key
// that a reload then removed (a leaked key taken away) is dropped, not
// given to later subscribers as that principal's word; one of a
// principal a key still stands for stays. Before, the gateway's pooled
// sessions carried no credential the router could re-check, and every
// retained event published through them stayed for as long as the router
// ran.
func TestRetainedOfRemovedAPIKeyDropped(t *testing.T) {
	laneFree(t)
	e := newEnv(t, keyedOptions)
	for _, p := range []struct{ topic, key string }{{"com.alice", aliceKey}, {"com.bob", bobKey}} {
		r, body := e.do("POST", "/wamp/realm1/publish/"+p.topic, `{"args":["retained"],"options":{"acknowledge":true,"retain":true}}`, "X-API-Key", p.key)
		if r.StatusCode != 200 {
			t.Fatalf("publish %s: %d %s", p.topic, r.StatusCode, body)
		}
	}
	before := e.r.Stats().RetainedRevoked
	// alice's key removed; bob's and dev's kept.
	if err := e.gw.SetAccess(e.gw.opts.Realms,
		[]APIKey{{Name: "bob", Key: bobKey, Realm: "realm1", AuthID: "bob", Role: "user"}},
		[]SigningKey{{Key: "dev", Secret: devSecret, Realm: "realm1", AuthID: "dev", Role: "device"}}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); e.r.Stats().RetainedRevoked == before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			break // the subscription below says what stayed
		}
	}
	s := e.dial("realm1", proto.JSON)
	for _, c := range []struct {
		topic string
		kept  bool
	}{{"com.alice", false}, {"com.bob", true}} {
		got := make(chan *client.Event, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := s.Subscribe(ctx, c.topic, func(ev *client.Event) { got <- ev }, &client.SubscribeOptions{GetRetained: true}); err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case ev := <-got:
			if !c.kept {
				t.Errorf("%s: the retained event published with the removed API key is still delivered: %v %v", c.topic, ev.Args, ev.Details)
			}
		case <-time.After(time.Second):
			if c.kept {
				t.Errorf("%s: the retained event of a principal a key still stands for was dropped", c.topic)
			}
		}
	}
}
