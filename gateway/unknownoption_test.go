package gateway

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestBridgeUnknownOptionNamed: a bridge option the endpoint does not
// take (a typo, another endpoint's option, a WAMP option the bridge does
// not carry) is refused 400 as an unknown member, naming it and the
// names taken, as a case-folded spelling of a known one is. The options
// were decoded first, and the decoder's refusal read "options:
// malformed JSON body: json: unknown field", a well-formed body called
// malformed.
func TestBridgeUnknownOptionNamed(t *testing.T) {
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	var invoked atomic.Int64
	e.register(callee, "com.unkopt", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		invoked.Add(1)
		return &client.Result{}, nil
	})
	sub := e.dial("realm1", proto.JSON)
	var events atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, "com.unkopt.t", func(*client.Event) { events.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, body, name, want string }{
		{"/wamp/realm1/call/com.unkopt", `{"options":{"timout":100}}`, "timout", "timeout, disclose_me"},
		{"/wamp/realm1/call/com.unkopt", `{"options":{"x_custom":1}}`, "x_custom", "timeout, disclose_me"},
		{"/wamp/realm1/call/com.unkopt", `{"options":{"disclose_me":true,"receive_progress":true}}`, "receive_progress", "timeout, disclose_me"},
		{"/wamp/realm1/publish/com.unkopt.t", `{"options":{"timeout":100}}`, "timeout", "acknowledge, retain"},
		{"/wamp/realm1/publish/com.unkopt.t", `{"args":[1],"options":{"exclude_me":false}}`, "exclude_me", "acknowledge, retain"},
	} {
		resp, b := e.do("POST", c.path, c.body)
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d %s, want 400", c.body, resp.StatusCode, b)
			continue
		}
		p := expectProblem(t, resp, b, 400, proto.URIInvalidArgument)
		if want := "options: unknown member " + quoteName(c.name) + " (want " + c.want; !strings.HasPrefix(p.Detail, want) {
			t.Errorf("%s: detail %q, want it to start %q", c.body, p.Detail, want)
		}
	}
	if n, m := invoked.Load(), events.Load(); n != 0 || m != 0 {
		t.Fatalf("bodies refused 400: the callee was invoked %d times, the subscriber got %d events", n, m)
	}
}
