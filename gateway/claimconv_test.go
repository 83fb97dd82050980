package gateway

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestRouteConvertsNumericClaims: a bearer token's numeric claims (JSON
// numbers, which the token's decoder gives as float64) take a route's
// conversions as a body's numbers do: "|int" an integer, "|float" a
// number, "|string" its decimal text.
func TestRouteConvertsNumericClaims(t *testing.T) {
	laneFree(t)
	iss := newJWTIssuer(t)
	e := newEnv(t, func(o *Options) {
		o.Bearer = &jwtVerifier{set: iss.set, issuer: "https://edgewamp.test"}
		o.Routes = []Route{{Name: "claims", Method: "GET", Path: "/mine", Realm: "realm1", Call: "com.echo", Auth: Auth{Type: "bearer"},
			Args: []any{"$/claims/device|int", "$/claims/device|string", "$/claims/ratio|float", "$/claims/ratio|string"}}}
	})
	e.register(e.dial("realm1", proto.JSON), "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	})
	tok := iss.token("dev7", "realm1", "user", "", time.Hour, map[string]any{"device": 42, "ratio": 0.5})
	resp, body := e.do("GET", "/mine", "", "Authorization", "Bearer "+tok)
	if resp.StatusCode != http.StatusOK || string(body) != `{"args":[42,"42",0.5,"0.5"],"kwargs":{}}` {
		t.Fatalf("the token's numeric claims through |int, |string, |float, |string: %d %s", resp.StatusCode, body)
	}
	// Past 2^53 a float64 claim is not the integer the issuer wrote: not
	// taken for an integer (it would be another device's).
	tok = iss.token("dev7", "realm1", "user", "", time.Hour, map[string]any{"device": 9007199254740993, "ratio": 0.5})
	resp, body = e.do("GET", "/mine", "", "Authorization", "Bearer "+tok)
	expectProblem(t, resp, body, http.StatusBadRequest, proto.URIInvalidArgument)
}
