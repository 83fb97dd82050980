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

// TestRouteIntAndBoolConversionsTakeJSONNumbers: "|int" takes a body's
// integral number written as a float (3.0, what Python's json.dumps(3.0)
// and JavaScript's JSON of a computed 3 from some libraries send; -2e0),
// and "|bool" the numbers 1 and 0, as they already took the strings
// "3" and "1"/"0". Before, both were 400 "must be an integer" / "must be
// a boolean (true/false, 1/0, yes/no)", the latter naming 1/0 as what it
// takes. A fraction, a number past 2^53 written as a float, and another
// number as a boolean are still refused.
func TestRouteIntAndBoolConversionsTakeJSONNumbers(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{{Method: "POST", Path: "/c", Realm: "realm1", Call: "com.conv",
			Args: []any{"$/body/i|int?", "$/body/b|bool?"}}}
	})
	var got atomic.Value
	callee := e.dial("realm1", proto.MsgPack)
	e.register(callee, "com.conv", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		got.Store(fmt.Sprintf("%T %v, %T %v", inv.Args[0], inv.Args[0], inv.Args[1], inv.Args[1]))
		return &client.Result{}, nil
	})
	for _, c := range []struct{ body, want string }{
		{`{"i":3,"b":true}`, "int64 3, bool true"},
		{`{"i":3.0,"b":1}`, "int64 3, bool true"},
		{`{"i":-2e0,"b":0}`, "int64 -2, bool false"},
		{`{"i":9007199254740991.0,"b":"1"}`, "int64 9007199254740991, bool true"},
	} {
		got.Store("")
		r, body := e.do("POST", "/c", c.body)
		if r.StatusCode != http.StatusOK || got.Load() != c.want {
			t.Errorf("%s: %d %s, callee got %q, want %q", c.body, r.StatusCode, body, got.Load(), c.want)
		}
	}
	for _, bad := range []string{`{"i":3.5}`, `{"i":1e300}`, `{"i":9007199254740993.0}`, `{"b":2}`, `{"b":0.5}`} {
		r, body := e.do("POST", "/c", bad)
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", bad, r.StatusCode, body)
		}
	}
}
