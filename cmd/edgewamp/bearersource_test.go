package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestBearerRouteNeedsTokenSource: a gateway route with auth type bearer
// takes nothing but a bearer token, checked by gateway.bearer's JWKS or
// by the OAuth2 server, whose tokens are each for the realm whose oauth:
// block issued it. With neither, check-config said ok and every request
// to the route was refused 401 (a warning at start said so in the log;
// with an oauth: block on another realm, 403 "the token is for realm",
// unsaid). Neither gateway.bearer nor an oauth: block applies at a
// reload, so no source can appear while the route stands: check-config,
// run and a reload refuse it, naming the route and its line.
func TestBearerRouteNeedsTokenSource(t *testing.T) {
	keys := newJWKS(t)
	const route = "    - {name: news, method: POST, path: /news, realm: realm1, publish: com.example.news, auth: {type: bearer}}\n"
	const gw = "gateway:\n  listen: 127.0.0.1:0\n"
	const realm1 = "realms: [{name: realm1}]\n"
	const oauthRealm1 = "realms: [{name: realm1, oauth: {clients: [{id: c, public: true}]}}]\n"
	const oauthOther = "realms: [{name: realm1}, {name: other, oauth: {clients: [{id: c, public: true}]}}]\n"
	for _, k := range []struct{ body, want string }{
		{realm1 + gw + "  routes:\n" + route,
			`line 5: gateway.routes[0] (news, POST /news) takes only bearer tokens (auth.type bearer), and none would be accepted on realm "realm1": configure gateway.bearer, or an oauth: block on the realm`},
		{oauthOther + gw + "  routes:\n" + route, `line 5: gateway.routes[0] (news, POST /news) takes only bearer tokens`},
		{realm1 + gw + "  routes:\n" + strings.Replace(route, "type: bearer", "type: any", 1), ""},
		{oauthRealm1 + gw + "  routes:\n" + route, ""},
		{realm1 + gw + fmt.Sprintf("  bearer: {jwks_file: %s, issuer: \"https://auth.test\"}\n", keys.file) + "  routes:\n" + route, ""},
		// Off, the gateway serves no route.
		{realm1 + "gateway:\n  listen: \"off\"\n  routes:\n" + route, ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}

// TestBearerRouteAudienceOfAnotherRealm: gateway.bearer with an audience
// wamp:<realm> takes only tokens that name that audience, and a token's
// wamp:<realm> audience binds it to that realm (one naming two realms is
// refused): a bearer route on another realm, without an oauth: block
// there, accepts no token, every request refused 403 ("the token is for
// realm"). validateBearerRoutes counted any gateway.bearer as a source for
// every realm, so check-config said ok.
func TestBearerRouteAudienceOfAnotherRealm(t *testing.T) {
	keys := newJWKS(t)
	const realms = "realms: [{name: realm1}, {name: realm2}]\n"
	bearer := func(aud string) string {
		return fmt.Sprintf("gateway:\n  listen: 127.0.0.1:0\n  bearer: {jwks_file: %s, issuer: \"https://auth.test\", audience: %q}\n  routes:\n", keys.file, aud)
	}
	const route = "    - {name: news, method: POST, path: /news, realm: realm1, publish: com.example.news, auth: {type: bearer}}\n"
	for _, k := range []struct{ body, want string }{
		{realms + bearer("wamp:realm2") + route, `line 6: gateway.routes[0] (news, POST /news) takes only bearer tokens (auth.type bearer), and none would be accepted on realm "realm1"`},
		{realms + bearer("wamp:realm1") + route, ""},
		{realms + bearer("https://api.example") + route, ""},
		{"realms: [{name: realm1, oauth: {clients: [{id: c, public: true}]}}, {name: realm2}]\n" + bearer("wamp:realm2") + route, ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}
