package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// wamp.registration.match names the registration a CALL of the URI would
// invoke, and so none for a URI a CALL is refused for before any
// registration is looked up: one that is not a valid procedure URI (a
// wildcard pattern's empty component matched it: "a..b" is a pattern, not
// a procedure) or one starting with "wamp." (a prefix registration
// "wamp" matched it, but only the router answers those). Before, both
// got the pattern's id, for calls refused invalid_uri and
// no_such_procedure.
func TestRegistrationMatchAgreesWithCall(t *testing.T) {
	e := newEnv(t, 1, nil)
	c := e.join(proto.JSON)
	wid := c.register("a..b", map[string]any{"match": "wildcard"})
	c.register("wamp", map[string]any{"match": "prefix"})
	for _, tc := range []struct{ uri, callErr string }{
		{"a..b", proto.URIInvalidURI},
		{"wamp.x.y", proto.URINoSuchProcedure},
	} {
		if v := c.callMeta("wamp.registration.match", []any{tc.uri}, nil); v != nil {
			t.Errorf("match %q: registration %v, want null", tc.uri, v)
		}
		req := c.call(tc.uri, nil, nil, nil)
		c.expectError(proto.CodeCall, req, tc.callErr)
	}
	// A procedure the pattern does match still names it.
	if v := c.callMeta("wamp.registration.match", []any{"a.x.b"}, nil); v != int64(wid) {
		t.Fatalf("match a.x.b: %v, want %d", v, wid)
	}
}
