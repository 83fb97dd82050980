package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// startJWKSBridge runs the binary with a gateway that takes JWT bearer
// tokens of keys (issuer https://auth.test, no audience configured) on
// realm1 and realm2, whose role "user" may publish through the bridge.
func startJWKSBridge(t *testing.T, keys *jwks) *reloadedGateway {
	t.Helper()
	realm := func(name string) string {
		return fmt.Sprintf(`  - name: %s
    security: true
    anonymous: true
    anonymous_role: guest
    roles:
      - name: guest
      - name: user
        http_bridge: true
        permissions: [{uri: com., match: prefix, allow: [publish]}]
`, name)
	}
	return startReloadedGateway(t, fmt.Sprintf("listeners: [{address: 127.0.0.1:0}]\nrealms:\n%s%sgateway:\n  listen: 127.0.0.1:0\n  bearer: {jwks_file: %s, issuer: \"https://auth.test\"}\n",
		realm("realm1"), realm("realm2"), keys.file))
}

// signed returns keys' token with claims (over a base of iss, sub alice,
// authrole user, iat and a 5 min exp) and, typ being non-empty, that typ
// header ("-": none at all).
func (j *jwks) signed(t *testing.T, typ string, claims map[string]any) string {
	t.Helper()
	b := jwt.NewBuilder().Issuer("https://auth.test").Subject("alice").Claim("authrole", "user").
		IssuedAt(time.Now()).Expiration(time.Now().Add(5 * time.Minute))
	for k, v := range claims {
		b = b.Claim(k, v)
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	var s []byte
	switch typ {
	case "-": // jws.Sign writes no typ, as some issuers do
		payload, err := jwt.NewSerializer().Serialize(tok)
		if err != nil {
			t.Fatal(err)
		}
		s, err = jws.Sign(payload, jws.WithKey(jwa.EdDSA, j.priv))
		if err != nil {
			t.Fatal(err)
		}
	default:
		h := jws.NewHeaders()
		if typ != "" {
			h.Set(jws.TypeKey, typ)
		}
		s, err = jwt.Sign(tok, jwt.WithKey(jwa.EdDSA, j.priv, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
	}
	return "Bearer " + string(s)
}

// publishAs publishes on realm's bridge with the Authorization value auth
// and returns the status.
func publishAs(t *testing.T, g *reloadedGateway, realm, auth string) (int, string) {
	t.Helper()
	r, body := g.do(t, "POST", "/wamp/"+realm+"/publish/com.t", `{"args":[1]}`, "Authorization", auth)
	return r.StatusCode, string(body)
}

// TestJWKSBearerIDTokenRefused: the gateway takes access tokens, not
// OpenID Connect ID tokens. An ID token says who signed in to a client
// (its aud is that client), not what a bearer may do; one carrying roles
// was accepted as an access token when no gateway.bearer.audience is set
// (the aud check is then off), so any client an identity provider issued
// ID tokens to, or anyone it leaked one to, could use it on the bridge.
// Accepted: typ at+jwt (RFC 9068) or application/at+jwt, and, for the
// issuers that do not mark access tokens, typ JWT or none. Refused (401
// invalid_token): any other typ (an issuer typing its ID tokens, logout
// or event tokens), and a token typed JWT or not at all that carries an
// ID token's claims (nonce, at_hash, c_hash, s_hash; OIDC Core §2, §3.3.2.11).
func TestJWKSBearerIDTokenRefused(t *testing.T) {
	keys := newJWKS(t)
	g := startJWKSBridge(t, keys)
	aud := []string{"wamp:realm1"}
	for _, tc := range []struct {
		name, typ string
		claims    map[string]any
		ok        bool
	}{
		{"at+jwt", "at+jwt", map[string]any{"aud": aud}, true},
		{"application/at+jwt", "application/at+jwt", map[string]any{"aud": aud}, true},
		{"JWT", "JWT", map[string]any{"aud": aud}, true},
		{"no typ", "-", map[string]any{"aud": aud}, true},
		{"JWT, no aud", "JWT", nil, true},
		{"ID token with nonce", "JWT", map[string]any{"aud": "my-spa", "nonce": "n-0S6_WzA2Mj", "roles": []string{"user"}}, false},
		{"ID token with at_hash", "JWT", map[string]any{"aud": "my-spa", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}, false},
		{"ID token with c_hash, no typ", "-", map[string]any{"aud": "my-spa", "c_hash": "LDktKdoQak3Pk0cnXxCltA"}, false},
		{"ID token with s_hash", "JWT", map[string]any{"s_hash": "x"}, false},
		{"typ id_token+jwt", "id_token+jwt", map[string]any{"aud": aud}, false},
		{"typ logout+jwt", "logout+jwt", map[string]any{"aud": aud}, false},
		{"typ secevent+jwt", "secevent+jwt", map[string]any{"aud": aud}, false},
	} {
		st, body := publishAs(t, g, "realm1", keys.signed(t, tc.typ, tc.claims))
		switch {
		case tc.ok && st/100 != 2:
			t.Errorf("%s: %d %s, want it accepted", tc.name, st, body)
		case !tc.ok && st != http.StatusUnauthorized:
			t.Errorf("%s: %d %s, want 401", tc.name, st, body)
		case !tc.ok && !strings.Contains(body, "not an access token"):
			t.Errorf("%s: %d %s, want a problem saying it is not an access token", tc.name, st, body)
		}
	}
}

// TestJWKSBearerSeveralRealmsRefused: a token's audience wamp:<realm>
// binds it to that realm; a token naming two realms was bound to the one
// listed last (aud [wamp:realm2, wamp:realm1] served on realm1 and was
// refused 403 on realm2, the same realms the other way round the
// opposite), and one naming the empty realm (wamp:) to none, so it served
// on every realm. Both are refused now (401): a token is bound to one
// realm, which it names. A realm named twice, or beside an audience that
// is not wamp:, still binds the token to it.
func TestJWKSBearerSeveralRealmsRefused(t *testing.T) {
	keys := newJWKS(t)
	g := startJWKSBridge(t, keys)
	for _, tc := range []struct {
		aud            []string
		realm1, realm2 int // the status on each realm
	}{
		{[]string{"wamp:realm2", "wamp:realm1"}, 401, 401},
		{[]string{"wamp:realm1", "wamp:realm2"}, 401, 401},
		{[]string{"wamp:"}, 401, 401},
		{[]string{"wamp:realm1", "wamp:"}, 401, 401},
		{[]string{"wamp:realm1", "wamp:realm1"}, 202, 403},
		{[]string{"https://api.example", "wamp:realm2"}, 403, 202},
	} {
		tok := keys.signed(t, "at+jwt", map[string]any{"aud": tc.aud})
		for i, want := range []int{tc.realm1, tc.realm2} {
			realm := []string{"realm1", "realm2"}[i]
			if st, body := publishAs(t, g, realm, tok); st != want {
				t.Errorf("aud %q on %s: %d %s, want %d", tc.aud, realm, st, body, want)
			}
		}
	}
}

// TestJWKSBearerKeycloakAccessTokenWithNonce: Keycloak (up to 24, and
// later with its "nonce backwards compatible" mapper) copies the
// authorization request's nonce into the access token (keycloak#26893),
// and keycloak-js sends one by default, so its single-page apps' access
// tokens carry nonce beside the payload claim typ "Bearer" that Keycloak
// writes in its access tokens ("ID" in its ID tokens). Since 1167ebd
// every such access token was refused as an ID token. Keycloak's ID
// tokens (typ "ID", or at_hash) are still refused.
func TestJWKSBearerKeycloakAccessTokenWithNonce(t *testing.T) {
	keys := newJWKS(t)
	g := startJWKSBridge(t, keys)
	kc := func(typ string, extra map[string]any) map[string]any {
		c := map[string]any{
			"aud": []string{"wamp:realm1", "account"}, "typ": typ, "azp": "my-spa",
			"nonce": "5f0c1d2e-8a3b-4c6d-9e7f-0a1b2c3d4e5f", "session_state": "0c1d", "sid": "0c1d",
			"scope": "openid profile email", "realm_access": map[string]any{"roles": []string{"user"}},
		}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		ok     bool
	}{
		{"Keycloak access token (typ Bearer, nonce)", kc("Bearer", nil), true},
		{"Keycloak ID token (typ ID, nonce, at_hash)", kc("ID", map[string]any{"aud": "my-spa", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}), false},
		{"Keycloak ID token (typ ID, nonce, no at_hash)", kc("ID", map[string]any{"aud": "my-spa"}), false},
		{"typ Bearer with at_hash", kc("Bearer", map[string]any{"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}), false},
	} {
		st, body := publishAs(t, g, "realm1", keys.signed(t, "JWT", tc.claims))
		switch {
		case tc.ok && st/100 != 2:
			t.Errorf("%s: %d %s, want it accepted", tc.name, st, body)
		case !tc.ok && st != http.StatusUnauthorized:
			t.Errorf("%s: %d %s, want 401", tc.name, st, body)
		}
	}
}
