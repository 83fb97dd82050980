package gateway

import (
	"bufio"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestExpectContinueRefusedBeforeBody: a request announcing its body with
// Expect: 100-continue, without the credential its realm or route needs,
// is answered 401 at once, without 100 Continue and without its body
// being read. Before, the gateway read the body (up to max_body) and only
// then authenticated: net/http asked for it (100 Continue) at the first
// read, so a client with no credential at all had the gateway take and
// hold 1 MiB a request before its 401.
func TestExpectContinueRefusedBeforeBody(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.APIKeys = []APIKey{{Name: "k", Key: "expect-key-0123456789", Realm: "realm1", AuthID: "svc", Role: "r"}}
		o.Routes = []Route{
			{Name: "bearer", Method: "POST", Path: "/bearer", Realm: "realm1", Call: "com.expect", Auth: Auth{Type: "bearer"}},
			{Name: "apikey", Method: "PUT", Path: "/apikey", Realm: "realm1", Publish: "com.expect", Auth: Auth{Type: "apikey"}},
			{Name: "keys", Method: "POST", Path: "/keys", Realm: "realm1", Call: "com.expect", Auth: Auth{Keys: []string{"k"}}},
			{Name: "secure", Method: "POST", Path: "/secure", Realm: "secure", Call: "com.ok.expect"},
		}
	})
	const size = 1 << 20 // max_body
	cases := []struct{ name, method, path, extra string }{
		{"bridge call", "POST", "/wamp/secure/call/com.ok.expect", ""},
		{"bridge publish", "POST", "/wamp/secure/publish/com.pub.expect", ""},
		{"event stream", "GET", "/wamp/secure/events/com.pub.expect", ""},
		{"bearer route", "POST", "/bearer", ""},
		{"bearer route, API key", "POST", "/bearer", "X-API-Key: expect-key-0123456789\r\n"}, // another credential than the route's
		{"apikey route", "PUT", "/apikey", ""},
		{"keys route", "POST", "/keys", ""},
		{"route on a realm with credentials", "POST", "/secure", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dialGateway(t, 10*time.Second)
			head := tc.method + " " + tc.path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" + tc.extra +
				"Expect: 100-continue\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
			if _, err := c.Write([]byte(head)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, b := readResponse(t, br)
			if resp.StatusCode == http.StatusContinue {
				t.Fatalf("answered 100 Continue: the gateway asked for the %d-byte body of a request without its credential", size)
			}
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", resp.StatusCode, b)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("a 401 without WWW-Authenticate")
			}
		})
	}
	// A request that may go on is asked for its body, as before.
	t.Run("anonymous realm", func(t *testing.T) {
		c := e.dialGateway(t, 10*time.Second)
		body := `{"args":[1]}`
		head := "POST /wamp/realm1/publish/com.expect HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
			"Expect: 100-continue\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		c.Write([]byte(head))
		br := bufio.NewReader(c)
		resp, b := readResponse(t, br)
		if resp.StatusCode != http.StatusContinue {
			t.Fatalf("status %d, want 100 Continue: %s", resp.StatusCode, b)
		}
		c.Write([]byte(body))
		if resp, b = readResponse(t, br); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d, want 202: %s", resp.StatusCode, b)
		}
	})
}
