package oauth

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Every 401 of the endpoints carries WWW-Authenticate (RFC 9110
// §15.5.2: a server generating a 401 "MUST send a WWW-Authenticate
// header field"). Only a client that had used HTTP Basic got one: a
// wrong client_secret in the form, an unknown client_id, a public client
// at the introspection endpoint were 401 without it, which HTTP stacks
// that follow the rule may treat as a malformed answer (older Android
// HttpURLConnection fails it with "No authentication challenges found").
func TestEvery401NamesAScheme(t *testing.T) {
	e := startEnv(t, nil)
	for _, c := range []struct{ path, body string }{
		{"/oauth/token", "grant_type=client_credentials&client_id=backend&client_secret=wrong"},
		{"/oauth/token", "grant_type=client_credentials&client_id=nosuch&client_secret=x"},
		{"/oauth/token", "grant_type=password&client_id=cli&client_secret=x&username=alice&password=x"},
		{"/oauth/introspect", "token=x&client_id=device"},
		{"/oauth/revoke", "token=x&client_id=backend&client_secret=wrong"},
	} {
		e.fresh() // a clean count of failures per case
		req, _ := http.NewRequest("POST", e.url+c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("POST %s %q: %d %s, want 401", c.path, c.body, resp.StatusCode, b)
		}
		if wa := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, "Basic ") {
			t.Errorf("POST %s %q: 401 with WWW-Authenticate %q, want a Basic challenge", c.path, c.body, wa)
		}
	}
}
