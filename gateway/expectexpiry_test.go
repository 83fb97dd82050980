package gateway

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestExpectContinueTokenExpiredDuringBody: a bearer token checked
// before a 100 Continue (a898f5b) that expires while the body arrives
// (up to body_timeout, 10 s) is refused 401 once the body is read, as a
// request without Expect, authenticated after its body, is; the call is
// not made. Before, the principal checked before the body served the
// call, the publication and the route with a token expired for up to body_timeout.
func TestExpectContinueTokenExpiredDuringBody(t *testing.T) {
	laneFree(t)
	iss := newJWTIssuer(t)
	e := newEnv(t, func(o *Options) {
		o.Bearer = &jwtVerifier{set: iss.set, issuer: "https://edgewamp.test"}
		o.Routes = []Route{
			{Name: "bearer", Method: "POST", Path: "/bearer", Realm: "realm1", Call: "com.echo", Args: "$/body/args", Auth: Auth{Type: "bearer"}},
		}
	})
	callee := e.dial("realm1", proto.JSON)
	var calls atomic.Int32
	e.register(callee, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		calls.Add(1)
		return &client.Result{Args: inv.Args}, nil
	})
	body := `{"args":["x"]}`
	for _, path := range []string{"/wamp/realm1/call/com.echo", "/wamp/realm1/publish/com.echo", "/bearer"} {
		tok := iss.token("alice", "realm1", "user", "", time.Second, nil)
		c := e.dialGateway(t, 10*time.Second)
		br := bufio.NewReader(c)
		head := "POST " + path + " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + tok + "\r\n" +
			"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nExpect: 100-continue\r\n\r\n"
		c.Write([]byte(head))
		resp, b := readResponse(t, br)
		if resp.StatusCode != http.StatusContinue {
			t.Fatalf("%s: status %d, want 100 Continue: %s", path, resp.StatusCode, b)
		}
		time.Sleep(2100 * time.Millisecond) // the token's exp (whole seconds) passes
		c.Write([]byte(body))
		resp, b = readResponse(t, br)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: a token expired while the body arrived: status %d, want 401 (callee called %d times): %.200s", path, resp.StatusCode, calls.Load(), b)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("the callee was called %d times with an expired token", n)
	}
}
