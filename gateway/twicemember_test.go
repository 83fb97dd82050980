package gateway

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestBridgeMemberGivenTwiceRefused: a bridge body whose member is given
// twice is refused (splitBody: "given twice"), so that what the gateway
// acts on is what any JSON reader in front of it (a WAF, a proxy's
// filter, an audit log) reads, first value or last. A first value of
// null slipped past the check ({"args":null,"args":[1]} called with
// [1]), and the options object was decoded with the last value of each
// name winning ({"acknowledge":true,"acknowledge":false} was published
// unacknowledged, {"timeout":100,"timeout":60000} waited a minute).
func TestBridgeMemberGivenTwiceRefused(t *testing.T) {
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	var invoked atomic.Int64
	e.register(callee, "com.twice", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		invoked.Add(1)
		return &client.Result{Args: inv.Args}, nil
	})
	sub := e.dial("realm1", proto.JSON)
	var events atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, "com.twice.t", func(*client.Event) { events.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, body, detail string }{
		{"/wamp/realm1/call/com.twice", `{"args":null,"args":[1]}`, `member "args" given twice`},
		{"/wamp/realm1/call/com.twice", `{"kwargs":null,"kw\u0061rgs":{"a":1}}`, `member "kwargs" given twice`},
		{"/wamp/realm1/call/com.twice", `{"options":null,"options":{"timeout":100}}`, `member "options" given twice`},
		{"/wamp/realm1/call/com.twice", `{"options":{"timeout":100,"timeout":60000}}`, `options: member "timeout" given twice`},
		{"/wamp/realm1/call/com.twice", `{"options":{"disclose_me":false,"disclose_\u006de":true}}`, `options: member "disclose_me" given twice`},
		{"/wamp/realm1/publish/com.twice.t", `{"options":{"acknowledge":true,"acknowledge":false}}`, `options: member "acknowledge" given twice`},
		{"/wamp/realm1/publish/com.twice.t", `{"args":[1],"options":{"exclude_authid":["a"],"exclude_authid":null}}`, `options: member "exclude_authid" given twice`},
	} {
		resp, b := e.do("POST", c.path, c.body)
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d %s", c.body, resp.StatusCode, b)
			continue
		}
		if p := expectProblem(t, resp, b, 400, proto.URIInvalidArgument); p.Detail != c.detail {
			t.Fatalf("%s: detail %q, want %q", c.body, p.Detail, c.detail)
		}
	}
	if n, m := invoked.Load(), events.Load(); n != 0 || m != 0 {
		t.Fatalf("bodies refused 400: the callee was invoked %d times, the subscriber got %d events", n, m)
	}
	// Each once: served.
	resp, b := e.do("POST", "/wamp/realm1/call/com.twice", `{"args":[1],"kwargs":null,"options":{"timeout":5000,"disclose_me":false}}`)
	if resp.StatusCode != 200 || string(b) != `{"args":[1],"kwargs":{}}` {
		t.Fatalf("a body with each member once: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do("POST", "/wamp/realm1/publish/com.twice.t", `{"args":[1],"options":{"acknowledge":true,"exclude_authid":["a"]}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("a publication with each option once: %d %s", resp.StatusCode, b)
	}
	waitFor(t, "the publication", func() bool { return events.Load() == 1 })
}
