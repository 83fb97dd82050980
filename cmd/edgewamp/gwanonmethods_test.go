package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A realm's authmethods decide whether it takes anonymous clients
// (build enables only the methods listed), on the HTTP bridge as over
// WAMP: a request without credentials acts as the realm's anonymous role
// exactly where an anonymous HELLO is welcomed. Before, the gateway read
// realms[].anonymous alone (its default: off in a realm with users): a
// realm with users listing anonymous among its authmethods welcomed
// anonymous WAMP clients and answered the same client's HTTP request 401
// "this realm needs credentials", and one with anonymous: true that left
// anonymous out of its authmethods refused anonymous HELLOs while the
// gateway took the request for its anonymous principal (401
// authentication_denied from the router's join, where a realm that needs
// credentials answers authentication_required and names the ways to give
// them). And check-config
// passed a realm with security whose authmethods list anonymous without
// defining its anonymous role, whose anonymous sessions could do nothing.
func TestAuthmethodsDecideAnonymousOnTheGateway(t *testing.T) {
	const cfg = `realms:
  - name: listed
    authmethods: [anonymous, wampcra]
    users: [{authid: u, role: user, secret: s3cret}]
  - name: unlisted
    anonymous: true
    authmethods: [wampcra]
    users: [{authid: u, role: user, secret: s3cret}]
`
	g := startGatewayRouter(t, "-config", writeFile(t, "anon.yaml", cfg))
	dial := func(realm string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := client.Dial(ctx, client.Config{URL: "rs://" + g.addr, Realm: realm, Serializer: proto.JSON})
		if err == nil {
			s.Close()
		}
		return err
	}
	if err := dial("listed"); err != nil {
		t.Fatalf("an anonymous HELLO to the realm listing anonymous: %v", err)
	}
	var we *client.Error
	if err := dial("unlisted"); !errors.As(err, &we) || we.URI != proto.URINoMatchingAuthMethod {
		t.Fatalf("an anonymous HELLO to the realm not listing it: %v, want %s", err, proto.URINoMatchingAuthMethod)
	}
	resp, body := g.do(t, http.MethodPost, "/wamp/listed/publish/com.example.news", `{"args": [1]}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("a publication without credentials to the realm whose WAMP clients may be anonymous: %d %s, want 202", resp.StatusCode, body)
	}
	resp, body = g.do(t, http.MethodPost, "/wamp/unlisted/publish/com.example.news", `{"args": [1]}`)
	if p := expectProblem(t, resp, body, http.StatusUnauthorized, proto.URIAuthenticationRequired); p.Detail != "this realm needs credentials" {
		t.Errorf("a request without credentials to the realm not listing anonymous: %q", p.Detail)
	}

	// Security on, anonymous listed, its role not defined.
	const secure = `realms:
  - name: plant
    security: true
    authmethods: [anonymous, wampcra]
    roles: [{name: user, permissions: [{uri: "com.", match: prefix, allow: [call]}]}]
    users: [{authid: u, role: user, secret: s3cret}]
`
	o, e, code := runCLI("check-config", writeFile(t, "secure.yaml", secure))
	if code != 1 || !strings.Contains(e, `allows anonymous sessions with role "anonymous", which it does not define`) {
		t.Errorf("check-config of a realm listing anonymous without its role: exit %d: %s%s", code, o, e)
	}
}
