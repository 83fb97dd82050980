package gateway

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestExpectContinueBadCredentialRefusedBeforeBody: a request waiting
// for 100 Continue with a bearer token or API key that is refused is
// answered 401 at once, its body not asked for, as one without any
// credential is (TestExpectContinueRefusedBeforeBody). Before, any such
// header ("Authorization: Bearer junk", a wrong X-API-Key) had the
// gateway send 100 Continue and read the body, up to max_body, before
// the 401. A good token's request is asked for its body and served, and
// authenticated once.
func TestExpectContinueBadCredentialRefusedBeforeBody(t *testing.T) {
	laneFree(t)
	iss := newJWTIssuer(t)
	e := newEnv(t, func(o *Options) {
		o.Bearer = &jwtVerifier{set: iss.set, issuer: "https://edgewamp.test"}
		o.APIKeys = []APIKey{{Name: "k", Key: "expect-key-0123456789", Realm: "realm1", AuthID: "svc", Role: "anonymous"}}
		o.Routes = []Route{
			{Name: "bearer", Method: "POST", Path: "/bearer", Realm: "realm1", Call: "com.echo", Args: "$/body/args", Auth: Auth{Type: "bearer"}},
			{Name: "apikey", Method: "PUT", Path: "/apikey", Realm: "realm1", Call: "com.echo", Args: "$/body/args", Auth: Auth{Type: "apikey"}},
		}
	})
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	})
	const junk = "Authorization: Bearer junk.junk.junk\r\n"
	const wrongKey = "X-API-Key: wrong-key-0000000000000\r\n"
	cases := []struct{ name, method, path, cred string }{
		{"bridge call, bad token", "POST", "/wamp/secure/call/com.echo", junk},
		{"bridge call, wrong key", "POST", "/wamp/realm1/call/com.echo", wrongKey},
		{"bridge publish, bad token", "POST", "/wamp/secure/publish/com.echo", junk},
		{"event stream, bad token", "GET", "/wamp/secure/events/com.echo", junk},
		{"bearer route, bad token", "POST", "/bearer", junk},
		{"apikey route, wrong key", "PUT", "/apikey", wrongKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dialGateway(t, 10*time.Second)
			head := tc.method + " " + tc.path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" + tc.cred +
				"Expect: 100-continue\r\nContent-Length: " + strconv.Itoa(1<<20) + "\r\n\r\n"
			if _, err := c.Write([]byte(head)); err != nil {
				t.Fatal(err)
			}
			resp, b := readResponse(t, bufio.NewReader(c))
			if resp.StatusCode == http.StatusContinue {
				t.Fatalf("answered 100 Continue: the gateway asked for the 1 MiB body of a request whose credential it refuses")
			}
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", resp.StatusCode, b)
			}
		})
	}
	successes := func() uint64 {
		e.gw.metrics.authMu.Lock()
		defer e.gw.metrics.authMu.Unlock()
		if n := e.gw.metrics.auth[[2]string{"bearer", "success"}]; n != nil {
			return n.Load()
		}
		return 0
	}
	// A good credential's request (curl's headers for a 2 KiB body) is
	// asked for its body and served as before, twice on one connection.
	good := "Authorization: Bearer " + iss.token("alice", "realm1", "user", "", time.Minute, nil) + "\r\n"
	payload := strings.Repeat("x", 2048)
	body := `{"args":["` + payload + `"]}`
	for _, tc := range []struct{ method, path, cred string }{
		{"POST", "/wamp/realm1/call/com.echo", good},
		{"POST", "/bearer", good},
		{"POST", "/wamp/realm1/call/com.echo", "X-API-Key: expect-key-0123456789\r\n"},
		{"PUT", "/apikey", "X-API-Key: expect-key-0123456789\r\n"},
	} {
		c := e.dialGateway(t, 10*time.Second)
		br := bufio.NewReader(c)
		for i := 0; i < 2; i++ {
			before := successes()
			head := tc.method + " " + tc.path + " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n" + tc.cred +
				"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nExpect: 100-continue\r\n\r\n"
			c.Write([]byte(head))
			resp, b := readResponse(t, br)
			if resp.StatusCode != http.StatusContinue {
				t.Fatalf("%s: status %d, want 100 Continue: %s", tc.path, resp.StatusCode, b)
			}
			c.Write([]byte(body))
			if resp, b = readResponse(t, br); resp.StatusCode != http.StatusOK || !strings.Contains(b, payload) {
				t.Fatalf("%s: %d %.200s", tc.path, resp.StatusCode, b)
			}
			if n := successes() - before; strings.HasPrefix(tc.cred, "Authorization") && n != 1 {
				t.Fatalf("%s: %d bearer authentications counted for one request", tc.path, n)
			}
		}
	}
}
