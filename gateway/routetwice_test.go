package gateway

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestRouteBodyMemberGivenTwiceRefused: a route's pointer into the
// request's body ("$/body/id") that names a member the body gives twice
// is refused 400, as the bridge refuses a body naming one of its members
// twice, rather than taking the last value: {"id":1,"id":2} called with
// 2, where a filter in front of the gateway (a WAF checking id, an audit
// of the bodies) reading the first value saw 1. A member the route does
// not look at may still repeat, and the callee's result is looked into
// as before (its last value).
func TestRouteBodyMemberGivenTwiceRefused(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Method: "POST", Path: "/dev/state", Realm: "realm1", Call: "com.rtwice", Args: []any{"$/body/id", "$/body/opt/level?"}},
			{Method: "POST", Path: "/dev/last", Realm: "realm1", Call: "com.rtwice.dup", Response: Response{Body: "$/kwargs/v"}},
		}
	})
	callee := e.dial("realm1", proto.JSON)
	var invoked atomic.Int64
	e.register(callee, "com.rtwice", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		invoked.Add(1)
		return &client.Result{Args: inv.Args}, nil
	})
	for _, c := range []struct{ body, detail string }{
		{`{"id":1,"id":2}`, "/body/id is given twice"},
		{`{"id":1,"\u0069d":2}`, "/body/id is given twice"},
		{`{"id":1,"opt":{"level":"low","level":"high"}}`, "/body/opt/level is given twice"},
		{`{"id":1,"opt":{},"opt":{"level":"high"}}`, "/body/opt is given twice"},
	} {
		resp, b := e.do("POST", "/dev/state", c.body)
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d %s, want 400 %q", c.body, resp.StatusCode, b, c.detail)
			continue
		}
		if p := expectProblem(t, resp, b, 400, proto.URIInvalidArgument); p.Detail != c.detail {
			t.Errorf("%s: detail %q, want %q", c.body, p.Detail, c.detail)
		}
	}
	if n := invoked.Load(); n != 0 {
		t.Fatalf("bodies refused 400: the callee was invoked %d times", n)
	}
	// A member the route does not use may repeat.
	resp, b := e.do("POST", "/dev/state", `{"id":1,"note":"a","note":"b","opt":{"level":"low"}}`)
	if resp.StatusCode != 200 || string(b) != `{"args":[1,"low"],"kwargs":{}}` {
		t.Fatalf("a body repeating a member no pointer uses: %d %s", resp.StatusCode, b)
	}
	// A callee's result is looked into as before: its last value.
	e.register(callee, "com.rtwice.dup", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Kwargs: map[string]any{"v": 7}}, nil
	})
	resp, b = e.do("POST", "/dev/last", "")
	if resp.StatusCode != 200 || string(b) != `7` {
		t.Fatalf("the response pointer: %d %s", resp.StatusCode, b)
	}
}
