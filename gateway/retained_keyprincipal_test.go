package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// What a keys reload does to the retained events of the keys' principals
// (keyCredential), beside TestRetainedOfRemovedAPIKeyDropped: a key
// rotated in one reload keeps them, a principal left without a key in one
// reload loses them even when a later one gives it a key again, and a
// WAMP user of the same authid and role keeps its own; the router's
// re-check at a reload leaves the pooled sessions of the principals open.

// retainedHeld reports whether a get_retained subscriber on s is handed a
// retained event of topic within a second.
func retainedHeld(t *testing.T, s *client.Session, topic string) bool {
	t.Helper()
	got := make(chan struct{}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub, err := s.Subscribe(ctx, topic, func(*client.Event) {
		select {
		case got <- struct{}{}:
		default:
		}
	}, &client.SubscribeOptions{GetRetained: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe(ctx, sub)
	select {
	case <-got:
		return true
	case <-time.After(time.Second):
		return false
	}
}

// retainVia publishes a retained event to topic with a key's credential.
func retainVia(t *testing.T, e *env, topic string, hdr ...string) {
	t.Helper()
	const body = `{"args":["retained"],"options":{"acknowledge":true,"retain":true}}`
	path := "/wamp/realm1/publish/" + topic
	if len(hdr) == 0 { // dev's signing key
		path = signedPath(path, "dev", devSecret, body)
	}
	if r, b := e.do("POST", path, body, hdr...); r.StatusCode != 200 {
		t.Fatalf("publish %s: %d %s", topic, r.StatusCode, b)
	}
}

// waitRevoked waits for the router to count n retained events revoked.
func waitRevoked(t *testing.T, e *env, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); e.r.Stats().RetainedRevoked < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d retained events revoked, want %d", e.r.Stats().RetainedRevoked, n)
		}
	}
}

// A key given another key (bob) or secret (dev) in the reload keeps its
// principal's retained events; alice's key removed in one reload and
// given back in the next does not bring hers back (README: a principal no
// key stands for any more).
func TestRetainedOfRotatedKeyKept(t *testing.T) {
	laneFree(t)
	e := newEnv(t, keyedOptions)
	retainVia(t, e, "com.alice", "X-API-Key", aliceKey)
	retainVia(t, e, "com.bob", "X-API-Key", bobKey)
	retainVia(t, e, "com.dev")
	alice := APIKey{Name: "alice", Key: aliceKey, Realm: "realm1", AuthID: "alice", Role: "user"}
	bob2 := APIKey{Name: "bob", Key: bobKey2, Realm: "realm1", AuthID: "bob", Role: "user"}
	dev2 := SigningKey{Key: "dev", Secret: devNew, Realm: "realm1", AuthID: "dev", Role: "device"}
	// Rotated: bob's key and dev's secret; alice removed.
	if err := e.gw.SetAccess(e.gw.opts.Realms, []APIKey{bob2}, []SigningKey{dev2}); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, e, 1)
	// alice's key back.
	if err := e.gw.SetAccess(e.gw.opts.Realms, []APIKey{alice, bob2}, []SigningKey{dev2}); err != nil {
		t.Fatal(err)
	}
	s := e.dial("realm1", proto.JSON)
	for _, c := range []struct {
		topic string
		kept  bool
	}{{"com.alice", false}, {"com.bob", true}, {"com.dev", true}} {
		if got := retainedHeld(t, s, c.topic); got != c.kept {
			t.Errorf("%s: retained event held %v, want %v", c.topic, got, c.kept)
		}
	}
	if n := e.r.Stats().RetainedRevoked; n != 1 {
		t.Errorf("%d retained events revoked, want 1 (alice's)", n)
	}
}

// A WAMP user whose authid and role are those of a key's principal
// retains as itself: removing the key drops the key's retained event, not
// the user's (the credential ids of the keys' principals are their own
// namespace). And the router's re-check at a reload leaves the key
// principals' pooled sessions open: they carry a credential without a
// Check.
func TestRetainedOfKeyPrincipalNotOfSameNamedUser(t *testing.T) {
	laneFree(t)
	pw, err := route.HashPassword("pw", 1000)
	if err != nil {
		t.Fatal(err)
	}
	users, err := route.NewUsers([]*route.User{{AuthID: "alice", Roles: []string{"user"}, Password: pw}})
	if err != nil {
		t.Fatal(err)
	}
	realms := []route.RealmConfig{{Name: "realm1", Anonymous: true, Users: users, Authenticators: []route.Authenticator{&route.TicketAuth{Users: users}}}, secureRealm()}
	e := newEnvRoute(t, func(c *route.Config) { c.Realms = realms }, keyedOptions)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := client.Dial(ctx, client.Config{URL: e.wamp, Realm: "realm1", AuthID: "alice", AuthMethods: []string{"ticket"},
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return "pw", nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.Publish(ctx, "com.user", []any{"mine"}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	retainVia(t, e, "com.alice", "X-API-Key", aliceKey)

	// The router's re-check (cmd reloads the router first) ends no pooled
	// session.
	before := e.gw.pool.sessions()
	if err := e.r.Reload(realms); err != nil {
		t.Fatal(err)
	}
	e.gw.pool.mu.Lock()
	for id, ip := range e.gw.pool.ids {
		for _, sl := range ip.slots {
			if sl == nil {
				continue
			}
			if s := readySess(sl); s != nil && s.dead.Load() {
				t.Errorf("%v: a pooled session ended at the router's reload", id)
			}
		}
	}
	e.gw.pool.mu.Unlock()
	if after := e.gw.pool.sessions(); after != before {
		t.Errorf("%d pooled sessions after the router's reload, %d before", after, before)
	}

	if err := e.gw.SetAccess(e.gw.opts.Realms,
		[]APIKey{{Name: "bob", Key: bobKey, Realm: "realm1", AuthID: "bob", Role: "user"}},
		[]SigningKey{{Key: "dev", Secret: devSecret, Realm: "realm1", AuthID: "dev", Role: "device"}}); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, e, 1)
	s := e.dial("realm1", proto.JSON)
	if retainedHeld(t, s, "com.alice") {
		t.Error("com.alice: the removed key's retained event is still held")
	}
	if !retainedHeld(t, s, "com.user") {
		t.Error("com.user: the WAMP user alice's retained event was dropped with the key alice's")
	}
}
