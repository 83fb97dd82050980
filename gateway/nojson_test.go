package gateway

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestResultWithoutJSONForm: a MsgPack or CBOR callee's result with no
// JSON form (NaN, an infinity, a dictionary key that is not a string: the Go client cannot send the last)
// was answered 400 wamp.error.invalid_argument, blaming the HTTP client
// for what its callee sent, and an application error carrying such a
// value lost its URI. Both are the callee's doing: 502 naming the cause,
// and an application error keeps its URI.
func TestResultWithoutJSONForm(t *testing.T) {
	e := newEnv(t, nil)
	for _, ser := range []proto.Serializer{proto.MsgPack, proto.CBOR} {
		callee := e.dial("realm1", ser)
		name := strings.ToLower(ser.String())
		e.register(callee, "com.nojson.nan."+name, func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{math.NaN()}}, nil
		})
		e.register(callee, "com.nojson.inf."+name, func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
			return &client.Result{Kwargs: map[string]any{"x": math.Inf(1)}}, nil
		})
		e.register(callee, "com.nojson.err."+name, func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
			return nil, &client.Error{URI: "com.app.broken", Args: []any{math.NaN()}}
		})
		for _, p := range []string{"nan", "inf"} {
			r, body := e.do("POST", "/wamp/realm1/call/com.nojson."+p+"."+name, "{}", "Content-Type", "application/json")
			if r.StatusCode != 502 || strings.Contains(string(body), "invalid_argument") || !strings.Contains(string(body), "JSON") {
				t.Errorf("%s result %s: %d %s; want 502 naming the callee's value that has no JSON form", name, p, r.StatusCode, body)
			}
		}
		r, body := e.do("POST", "/wamp/realm1/call/com.nojson.err."+name, "{}", "Content-Type", "application/json")
		if r.StatusCode != 502 || !strings.Contains(string(body), `"error":"com.app.broken"`) {
			t.Errorf("%s application error with a NaN: %d %s; want 502 with its URI", name, r.StatusCode, body)
		}
	}
}
