package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestPublishListsTakenAsWAMPTakesThem: a bridge publication's id lists
// take WAMP ids (integers in [0, 2^53], as a PUBLISH's do) and its lists
// are lists, as a WAMP PUBLISH's options must be. Before, the bridge took
// any unsigned 64-bit integer ("eligible":[2^53+1] answered 202 and the
// event went to no one, where the same option on a WAMP PUBLISH is
// ABORTed wamp.error.protocol_violation) and took a null list for an
// absent one ("eligible": null published to every subscriber).
func TestPublishListsTakenAsWAMPTakesThem(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range []struct{ name, opts string }{
		{"eligible", `{"eligible":[9007199254740993]}`},
		{"exclude", `{"exclude":[1, 18446744073709551615]}`},
		{"eligible", `{"eligible":null}`},
		{"eligible_authid", `{"eligible_authid": null}`},
		{"exclude_authrole", `{"exclude_authrole":null}`},
	} {
		r, b := e.do("POST", "/wamp/realm1/publish/com.lists.ids", `{"options":`+c.opts+`}`)
		p := expectProblem(t, r, b, http.StatusBadRequest, proto.URIInvalidArgument)
		if !strings.Contains(p.Detail, c.name) {
			t.Errorf("options %s: the problem's detail %q does not name %s", c.opts, p.Detail, c.name)
		}
	}
	// The largest WAMP id and an absent list are taken.
	for _, opts := range []string{`{"exclude":[0, 9007199254740992]}`, `{"eligible_authid":["x"]}`, `{}`} {
		if r, b := e.do("POST", "/wamp/realm1/publish/com.lists.ids", `{"options":`+opts+`}`); r.StatusCode != http.StatusAccepted {
			t.Errorf("options %s: %d %s, want 202", opts, r.StatusCode, b)
		}
	}
}
