package gateway

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestOptionTypeNamed: a bridge option of the wrong type is refused 400
// naming the option and the type it takes. Before, the 400 read
// "options: malformed JSON body: json: cannot unmarshal ..." (the
// decoder's words, a Go struct's field and type), for a body that is well
// formed JSON.
func TestOptionTypeNamed(t *testing.T) {
	e := newEnv(t, nil)
	var calls atomic.Int64
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.opttype", func(context.Context, *client.Invocation) (*client.Result, error) {
		calls.Add(1)
		return &client.Result{}, nil
	})
	cases := []struct{ path, body, want string }{
		{"/wamp/realm1/call/com.opttype", `{"options":{"timeout":"5000"}}`, "options: timeout must be an integer (milliseconds), not a string"},
		{"/wamp/realm1/call/com.opttype", `{"options":{"timeout":1.5}}`, "options: timeout must be an integer (milliseconds), not 1.5"},
		{"/wamp/realm1/call/com.opttype", `{"options":{"timeout":1e3}}`, "options: timeout must be an integer (milliseconds), not 1e3"},
		{"/wamp/realm1/call/com.opttype", `{"options":{"timeout":99999999999999999999}}`, "options: timeout must be an integer (milliseconds) up to 9223372036854775807"},
		{"/wamp/realm1/call/com.opttype", `{"options":{"timeout":-99999999999999999999}}`, "options.timeout must not be negative"},
		{"/wamp/realm1/call/com.opttype", `{"options":{"timeout":[1]}}`, "options: timeout must be an integer (milliseconds), not a list"},
		{"/wamp/realm1/call/com.opttype", `{"options":{"disclose_me":1}}`, "options: disclose_me must be true or false, not 1"},
		{"/wamp/realm1/publish/com.opttype", `{"options":{"acknowledge":"true"}}`, "options: acknowledge must be true or false, not a string"},
		{"/wamp/realm1/publish/com.opttype", `{"options":{"retain":{}}}`, "options: retain must be true or false, not an object"},
		{"/wamp/realm1/publish/com.opttype", `{"options":{"disclose_me":0}}`, "options: disclose_me must be true or false, not 0"},
	}
	for _, tc := range cases {
		resp, b := e.do("POST", tc.path, tc.body)
		p := expectProblem(t, resp, b, 400, proto.URIInvalidArgument)
		if p.Detail != tc.want {
			t.Errorf("%s: detail %q, want %q", tc.body, p.Detail, tc.want)
		}
		if strings.Contains(p.Detail, "malformed") {
			t.Errorf("%s: a well-formed body called malformed: %q", tc.body, p.Detail)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d calls made", n)
	}
	// The right types, and null, still pass.
	for _, body := range []string{`{"options":{"timeout":5000,"disclose_me":false}}`, `{"options":{"timeout":null,"disclose_me":null}}`} {
		if resp, b := e.do("POST", "/wamp/realm1/call/com.opttype", body); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
		}
	}
	if resp, b := e.do("POST", "/wamp/realm1/publish/com.opttype", `{"options":{"acknowledge":true,"retain":false}}`); resp.StatusCode != 200 {
		t.Fatalf("publication: %d %s", resp.StatusCode, b)
	}
}
