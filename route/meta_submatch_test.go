package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// wamp.subscription.match names the subscriptions an event of the topic
// would reach, and so none for a topic a PUBLISH of it is refused before
// any subscription is looked up: one that is not a valid topic URI ("a..b"
// is matched by a prefix subscription "a." and a wildcard "a..b" through
// their empty components). Before, it got their ids, for a publication
// refused invalid_uri (as 02b197c answered wamp.registration.match). A
// "wamp." topic still names its subscription: the router's meta events
// reach it.
func TestSubscriptionMatchAgreesWithPublish(t *testing.T) {
	e := newEnv(t, 1, nil)
	c := e.join(proto.JSON)
	pid := c.subscribe("a.", map[string]any{"match": "prefix"})
	c.subscribe("a..b", map[string]any{"match": "wildcard"})
	mid := c.subscribe("wamp.session.on_join", nil)
	if v := c.callMeta("wamp.subscription.match", []any{"a..b"}, nil); v != nil {
		t.Errorf("match %q: subscriptions %v, want null", "a..b", v)
	}
	req := c.publish("a..b", map[string]any{"acknowledge": true}, nil, nil)
	c.expectError(proto.CodePublish, req, proto.URIInvalidURI)
	// A topic the prefix does match still names it.
	if v, _ := c.callMeta("wamp.subscription.match", []any{"a.x"}, nil).([]any); len(v) != 1 || v[0] != int64(pid) {
		t.Fatalf("match a.x: %v, want [%d]", v, pid)
	}
	if v, _ := c.callMeta("wamp.subscription.match", []any{"wamp.session.on_join"}, nil).([]any); len(v) != 1 || v[0] != int64(mid) {
		t.Fatalf("match wamp.session.on_join: %v, want [%d]", v, mid)
	}
}
