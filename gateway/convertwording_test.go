package gateway

import (
	"context"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// TestCalleeCopyingConversionWordingKeepsItsURI: the gateway answers 502
// edgewamp.error.upstream when the router could not give the gateway's
// JSON session a callee's result (a NaN from a MsgPack callee). It told
// that invalid_argument from any other by its text
// (route.ConvertCallerPrefix), so a callee whose own invalid_argument
// started with the router's wording lost its URI and its 400. The router
// now marks its own such errors in their Details (route.KeyForCaller),
// which a callee's ERROR does not carry through, even when it sets it.
func TestCalleeCopyingConversionWordingKeepsItsURI(t *testing.T) {
	e := newEnv(t, nil)
	s := e.dial("realm1", proto.JSON)
	text := route.ConvertCallerPrefix + "NaN has no JSON form"
	e.register(s, "com.cw.copy", func(context.Context, *client.Invocation) (*client.Result, error) {
		return nil, &client.Error{URI: proto.URIInvalidArgument, Args: []any{text}}
	})
	e.register(s, "com.cw.forge", func(context.Context, *client.Invocation) (*client.Result, error) {
		return nil, &client.Error{URI: proto.URIInvalidArgument, Args: []any{text}, Details: map[string]any{route.KeyForCaller: true}}
	})
	for _, p := range []string{"copy", "forge"} {
		r, b := e.do("POST", "/wamp/realm1/call/com.cw."+p, `{"args":[1]}`)
		if r.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"error":"wamp.error.invalid_argument"`) {
			t.Errorf("a callee's invalid_argument worded as the router's (%s): %d %s, want 400 wamp.error.invalid_argument", p, r.StatusCode, b)
		}
	}
	mp := e.dial("realm1", proto.MsgPack)
	e.register(mp, "com.cw.nan", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{math.NaN()}}, nil
	})
	if r, b := e.do("POST", "/wamp/realm1/call/com.cw.nan", `{}`); r.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), `"error":"`+URIUpstream+`"`) {
		t.Errorf("a result with no JSON form: %d %s, want 502 %s", r.StatusCode, b, URIUpstream)
	}
}
