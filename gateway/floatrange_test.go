package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestFloatBeyondRangeNamed: a JSON number beyond float64's range (1e400),
// which the router refuses wherever it reads JSON, is refused 400 with a
// detail that names it: the detail listed binary strings, "__proto__" and
// integers beyond 8192 bits, none of which the body held.
func TestFloatBeyondRangeNamed(t *testing.T) {
	e := newEnv(t, nil)
	e.register(e.dial("realm1", proto.JSON), "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	})
	for _, n := range []string{"1e400", "-1e400"} {
		resp, body := e.do("POST", "/wamp/realm1/call/com.echo", `{"args":[`+n+`]}`)
		p := expectProblem(t, resp, body, http.StatusBadRequest, proto.URIInvalidArgument)
		if !strings.Contains(p.Detail, "float64") {
			t.Fatalf("%s: the detail %q does not name a number beyond float64's range", n, p.Detail)
		}
	}
	if resp, body := e.do("POST", "/wamp/realm1/call/com.echo", `{"args":[1e308]}`); resp.StatusCode != 200 {
		t.Fatalf("1e308: %d %s", resp.StatusCode, body)
	}
}
