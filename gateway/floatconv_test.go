package gateway

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestRouteFloatConversionGivesFloats: "|float" gives the callee a float
// whatever the value's text: "2" from a query, 3 from a body. Before, an
// integral value went out as the JSON text "2", which the router reads as
// an integer, so MsgPack, CBOR and JSON callees alike got int64 2 (the
// bridge's "2.0" reaches them as float64): a typed callee's float
// parameter got an integer, and a route had no way to send an integral
// float. A body's number beyond float64 (1e400) is the conversion's 400.
func TestRouteFloatConversionGivesFloats(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{{Method: "POST", Path: "/f", Realm: "realm1", Call: "com.flt",
			Args: []any{"$/query/x|float", "$/body/y|float", "$/query/x|int"}}}
	})
	var got atomic.Value
	callee := e.dial("realm1", proto.MsgPack)
	e.register(callee, "com.flt", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		got.Store(fmt.Sprintf("%T %v, %T %v, %T %v", inv.Args[0], inv.Args[0], inv.Args[1], inv.Args[1], inv.Args[2], inv.Args[2]))
		return &client.Result{}, nil
	})
	for _, c := range []struct{ query, body, want string }{
		{"x=2", `{"y":3}`, "float64 2, float64 3, int64 2"},
		{"x=-0", `{"y":-1e2}`, "float64 -0, float64 -100, int64 0"},
		{"x=1", `{"y":2.5}`, "float64 1, float64 2.5, int64 1"},
		{"x=1", `{"y":12345678901234567890}`, "float64 1, float64 1.2345678901234567e+19, int64 1"},
	} {
		got.Store("")
		r, body := e.do("POST", "/f?"+c.query, c.body)
		if r.StatusCode != http.StatusOK || got.Load() != c.want {
			t.Errorf("%s %s: %d %s, callee got %q, want %q", c.query, c.body, r.StatusCode, body, got.Load(), c.want)
		}
	}
	r, body := e.do("POST", "/f?x=1", `{"y":1e400}`)
	expectProblem(t, r, body, http.StatusBadRequest, proto.URIInvalidArgument)
}
