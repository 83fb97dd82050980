package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestFloatTextOverBoundNamed: a JSON float whose text is longer than
// 4 KiB (1.000...0, well formed, within float64's range), which the
// router refuses wherever it reads JSON (proto.ErrNumberText), is refused
// 400 with a detail that names it: the detail listed malformed binary
// strings, binary and "__proto__" keys, integers beyond 8192 bits and
// numbers beyond float64's range, none of which the body held (an HTTP
// callee's answer holding one is refused with the same list).
func TestFloatTextOverBoundNamed(t *testing.T) {
	e := newEnv(t, nil)
	e.register(e.dial("realm1", proto.JSON), "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	})
	long := "1." + strings.Repeat("0", 5000)
	resp, body := e.do("POST", "/wamp/realm1/call/com.echo", `{"args":[`+long+`]}`)
	p := expectProblem(t, resp, body, http.StatusBadRequest, proto.URIInvalidArgument)
	if !strings.Contains(p.Detail, "4 KiB") {
		t.Fatalf("a float written in 5 KiB: the detail %q does not name the bound of a number's text", p.Detail)
	}
	if resp, body := e.do("POST", "/wamp/realm1/call/com.echo", `{"args":[1.`+strings.Repeat("0", 4000)+`]}`); resp.StatusCode != 200 {
		t.Fatalf("a float written in 4,002 bytes: %d %s", resp.StatusCode, body)
	}
}
