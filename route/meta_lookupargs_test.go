package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestLookupOptionsByKeyword: wamp.registration.lookup and
// wamp.subscription.lookup take (uri, options); Crossbar.io's are Python
// functions, lookup(procedure, options=None), which Autobahn|Python calls
// as call("wamp.registration.lookup", uri, options={"match": "prefix"}).
// The router read the options by position only and ignored them given by
// keyword, silently: the exact entry was looked up, and a prefix or
// wildcard registration or subscription that exists was answered null.
// They are read by keyword too; given both ways, the call is refused.
func TestLookupOptionsByKeyword(t *testing.T) {
	e := newEnv(t, 2, nil)
	a, b := e.join(proto.JSON), e.join(proto.MsgPack)
	reg := b.register("com.p.", map[string]any{"match": "prefix"})
	sub := b.subscribe("com..t", map[string]any{"match": "wildcard"})
	if got := a.callMeta("wamp.registration.lookup", []any{"com.p."}, map[string]any{"options": map[string]any{"match": "prefix"}}); got != int64(reg) {
		t.Fatalf("registration.lookup with options by keyword: %v, want %d", got, reg)
	}
	if got := a.callMeta("wamp.subscription.lookup", []any{"com..t"}, map[string]any{"options": map[string]any{"match": "wildcard"}}); got != int64(sub) {
		t.Fatalf("subscription.lookup with options by keyword: %v, want %d", got, sub)
	}
	// By position, as before; no options: the exact entry (none).
	if got := a.callMeta("wamp.registration.lookup", []any{"com.p.", map[string]any{"match": "prefix"}}, nil); got != int64(reg) {
		t.Fatalf("registration.lookup with options by position: %v, want %d", got, reg)
	}
	if got := a.callMeta("wamp.subscription.lookup", []any{"com..t"}, nil); got != nil {
		t.Fatalf("subscription.lookup without options: %v, want null", got)
	}
	for _, proc := range []string{"wamp.registration.lookup", "wamp.subscription.lookup"} {
		req := a.call(proc, nil, []any{"com.p.", map[string]any{"match": "prefix"}}, map[string]any{"options": map[string]any{"match": "prefix"}})
		a.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
		req = a.call(proc, nil, []any{"com.p."}, map[string]any{"options": "prefix"})
		a.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
	}
}
