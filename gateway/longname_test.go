package gateway

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestBridgeUnknownMemberNameShortened: a bridge body naming a member
// (or an option) the endpoint does not take is refused 400 naming it,
// its first 64 bytes only. The whole name was quoted into the detail:
// a body of max_body (1 MiB) whose one member name is 340,000 U+2028
// (escaped by the quoting, 3 bytes to 7 in the answer) was answered
// 400 with 2.4 MB, and made the gateway allocate about 48 MB, for each
// request, from anyone.
func TestBridgeUnknownMemberNameShortened(t *testing.T) {
	e := newEnv(t, nil)
	long := strings.Repeat("\u2028", 340000)
	for _, c := range []struct{ body, detail string }{
		{`{"` + long + `":1}`, `unknown member "` + strings.Repeat(`\u2028`, 21) + `"... (want args, kwargs, options)`},
		{`{"options":{"` + long + `":1}}`, `options: unknown member "` + strings.Repeat(`\u2028`, 21) + `"... (want timeout, disclose_me, written so)`},
		{`{"options":{"x` + long + `":1}}`, `options: unknown member "x` + strings.Repeat(`\u2028`, 21) + `"... (want timeout, disclose_me, written so)`},
	} {
		resp, b := e.do("POST", "/wamp/realm1/call/com.longname", c.body)
		if resp.StatusCode != 400 || len(b) > 4096 {
			t.Errorf("%d-byte body naming a member of %d bytes: %d, a %d-byte answer, want 400 under 4 KiB", len(c.body), len(long), resp.StatusCode, len(b))
			continue
		}
		if p := expectProblem(t, resp, b, 400, proto.URIInvalidArgument); p.Detail != c.detail {
			t.Errorf("detail %q, want %q", p.Detail, c.detail)
		}
	}
	// A short one is named whole.
	resp, b := e.do("POST", "/wamp/realm1/call/com.longname", `{"argz":[1]}`)
	if p := expectProblem(t, resp, b, 400, proto.URIInvalidArgument); p.Detail != `unknown member "argz" (want args, kwargs, options)` {
		t.Errorf("detail %q", p.Detail)
	}
}
