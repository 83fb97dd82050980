package gateway

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestBridgeOptionNamesExact: a bridge body's options are named exactly
// (timeout, disclose_me; acknowledge, retain, exclude, ...), as its
// members are (args, kwargs, options: "Args" is refused). The options
// object was decoded by a JSON decoder that matches names regardless of
// case, Unicode's folding included, so {"DISCLOSE_ME":true},
// {"Retain":true} and "di\u017fclo\u017fe_me" (a long s) disclosed,
// retained and so on, while a filter in front of the gateway looking for
// the option by its name (a WAF refusing retain or disclose_me from
// outside) saw none; and {"Timeout":100,"timeout":60000} was one option
// given twice under two spellings.
func TestBridgeOptionNamesExact(t *testing.T) {
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	var invoked atomic.Int64
	e.register(callee, "com.optname", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		invoked.Add(1)
		return &client.Result{Args: []any{inv.Caller != 0}}, nil
	})
	sub := e.dial("realm1", proto.JSON)
	var events atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, "com.optname.t", func(*client.Event) { events.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, body, name string }{
		{"/wamp/realm1/call/com.optname", `{"options":{"DISCLOSE_ME":true}}`, "DISCLOSE_ME"},
		{"/wamp/realm1/call/com.optname", `{"options":{"di\u017fclo\u017fe_me":true}}`, "di\u017fclo\u017fe_me"},
		{"/wamp/realm1/call/com.optname", `{"options":{"Timeout":100,"timeout":60000}}`, "Timeout"},
		{"/wamp/realm1/publish/com.optname.t", `{"options":{"Retain":true}}`, "Retain"},
		{"/wamp/realm1/publish/com.optname.t", `{"options":{"ac\u212anowledge":true}}`, "ac\u212anowledge"},
		{"/wamp/realm1/publish/com.optname.t", `{"options":{"Exclude_AuthID":["x"]}}`, "Exclude_AuthID"},
	} {
		resp, b := e.do("POST", c.path, c.body)
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d %s, want 400 naming %q", c.body, resp.StatusCode, b, c.name)
			continue
		}
		p := expectProblem(t, resp, b, 400, proto.URIInvalidArgument)
		if want := "options: unknown member " + quoteName(c.name); len(p.Detail) < len(want) || p.Detail[:len(want)] != want {
			t.Errorf("%s: detail %q, want it to start %q", c.body, p.Detail, want)
		}
	}
	if n, m := invoked.Load(), events.Load(); n != 0 || m != 0 {
		t.Fatalf("bodies refused 400: the callee was invoked %d times, the subscriber got %d events", n, m)
	}
	// Named exactly: served, the caller disclosed.
	resp, b := e.do("POST", "/wamp/realm1/call/com.optname", `{"options":{"disclose_me":true,"timeout":5000}}`)
	if resp.StatusCode != 200 || string(b) != `{"args":[true],"kwargs":{}}` {
		t.Fatalf("disclose_me named exactly: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do("POST", "/wamp/realm1/publish/com.optname.t", `{"options":{"acknowledge":true,"retain":false,"exclude_authid":["x"]}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("publication options named exactly: %d %s", resp.StatusCode, b)
	}
	waitFor(t, "the publication", func() bool { return events.Load() == 1 })
}

func quoteName(s string) string { return strconv.Quote(s) }
