package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestRouteKeysBindEveryRequest: a route whose auth.keys name the keys
// that may use it (type any, the default: API keys or signed requests)
// serves those keys only, not requests without credentials (the realm's
// anonymous role) nor bearer tokens, which name no key.
func TestRouteKeysBindEveryRequest(t *testing.T) {
	laneFree(t)
	iss := newJWTIssuer(t)
	e := newEnv(t, func(o *Options) {
		keyedOptions(o)
		o.Bearer = &jwtVerifier{set: iss.set, issuer: "https://edgewamp.test"}
	})
	calls := make(chan string, 8)
	e.register(e.dial("realm1", proto.JSON), "com.tick", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		calls <- inv.CallerAuthID
		return &client.Result{}, nil
	})
	resp, body := e.do("POST", "/ticks", `{}`, "X-API-Key", bobKey)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's key, which the route names: %d %s", resp.StatusCode, body)
	}
	<-calls
	resp, body = e.do("POST", "/ticks", `{}`, "X-API-Key", aliceKey)
	expectProblem(t, resp, body, http.StatusUnauthorized, proto.URIAuthenticationRequired)
	resp, body = e.do("POST", "/ticks", `{}`)
	expectProblem(t, resp, body, http.StatusUnauthorized, proto.URIAuthenticationRequired)
	tok := iss.token("tess", "realm1", "user", "", time.Hour, nil)
	resp, body = e.do("POST", "/ticks", `{}`, "Authorization", "Bearer "+tok)
	expectProblem(t, resp, body, http.StatusUnauthorized, proto.URIAuthenticationRequired)
	select {
	case who := <-calls:
		t.Fatalf("the callee was called as %q through a route only keys bob and dev may use", who)
	default:
	}
	// The OpenAPI document says so.
	_, doc := e.do("GET", "/openapi.json", "")
	var api struct {
		Paths map[string]map[string]struct {
			Security []map[string][]string `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &api); err != nil {
		t.Fatal(err)
	}
	if sec := fmt.Sprint(api.Paths["/ticks"]["post"].Security); sec != "[map[apiKey:[]] map[signed:[]]]" {
		t.Fatalf("/ticks's security in the OpenAPI document: %s, want an API key or a signed request", sec)
	}
	// A streamed call opened without credentials or with a token on a
	// route that a reload gives auth.keys ends (the reload's re-check).
	ac := e.gw.access.Load()
	ticks := ac.routes.byLabel["ticks"]
	if p := e.gw.routeRefuses(ac, ticks, ac.realm("realm1").anon); p == nil || p.status != http.StatusUnauthorized {
		t.Fatalf("the re-check of a stream without credentials on the keyed route: %+v, want 401", p)
	}
	bearer := &who{id: identity{realm: "realm1", authid: "tess", authrole: "user", method: "jwt"}, p: &Principal{AuthID: "tess", AuthRole: "user"}}
	if p := e.gw.routeRefuses(ac, ticks, bearer); p == nil || p.status != http.StatusUnauthorized {
		t.Fatalf("the re-check of a bearer stream on the keyed route: %+v, want 401", p)
	}
	// Keys with a type that takes no key are a configuration error.
	for _, typ := range []string{"bearer", "none"} {
		_, err := e.gw.Prepare(Update{Realms: e.gw.opts.Realms, APIKeys: e.gw.opts.APIKeys, SigningKeys: e.gw.opts.SigningKeys,
			Routes: []Route{{Name: "k", Method: "POST", Path: "/k", Realm: "realm1", Call: "com.tick", Auth: Auth{Type: typ, Keys: []string{"bob"}}}}})
		if err == nil || !strings.Contains(err.Error(), "routes[0].auth.keys") {
			t.Fatalf("a route of auth type %s with keys: %v, want an error naming routes[0].auth.keys", typ, err)
		}
	}
}
