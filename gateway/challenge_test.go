package gateway

import (
	"context"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Every 401 carries a WWW-Authenticate challenge (RFC 9110 §15.5.2), also
// one that maps a callee's authentication error or an application error
// the configuration maps to 401; a 403 carries none. Before, only the
// gateway's own refusals of credentials did: a callee's
// wamp.error.authentication_failed became a 401 without one.
func TestEvery401CarriesAChallenge(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Errors = map[string]int{"com.example.login_expired": 401} })
	callee := e.dial("realm1", proto.MsgPack)
	for uri, errURI := range map[string]string{
		"com.authn":   proto.URIAuthenticationFailed,
		"com.expired": "com.example.login_expired",
		"com.denied":  proto.URINotAuthorized,
	} {
		e.register(callee, uri, func(context.Context, *client.Invocation) (*client.Result, error) {
			return nil, &client.Error{URI: errURI}
		})
	}
	for _, c := range []struct {
		uri    string
		status int
		errURI string
	}{
		{"com.authn", 401, proto.URIAuthenticationFailed},
		{"com.expired", 401, "com.example.login_expired"},
		{"com.denied", 403, proto.URINotAuthorized},
	} {
		resp, body := e.do("POST", "/wamp/realm1/call/"+c.uri, `{}`)
		expectProblem(t, resp, body, c.status, c.errURI)
		got := resp.Header.Get("WWW-Authenticate")
		if c.status == 401 && got == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.uri)
		}
		if c.status != 401 && got != "" {
			t.Errorf("%s: %d with WWW-Authenticate %q", c.uri, c.status, got)
		}
	}
}
