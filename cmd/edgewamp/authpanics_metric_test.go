package main

import (
	"net/http"
	"testing"
	"time"
)

// The panics recovered in the embedder's Authenticators and Authorizers
// (route.Stats.AuthenticatorPanics, AuthorizerPanics) reach /metrics as
// edgewamp_auth_panics_total{in="authenticator"|"authorizer"}, 0 while
// none panicked. Before, they were counted nowhere.
func TestAuthPanicsMetricExported(t *testing.T) {
	path := writeFile(t, "panics.yaml", "realms: [{name: realm1, anonymous: true}]\n")
	g := startGatewayRouter(t, "-config", path)
	gw := &gwRouter{router: g.router, base: g.base, hc: &http.Client{Timeout: 10 * time.Second}}
	fams := scrape(t, gw)
	for _, in := range []string{"authenticator", "authorizer"} {
		if v := metricValue(fams, "edgewamp_auth_panics_total", "in", in); v != 0 {
			t.Errorf("edgewamp_auth_panics_total{in=%q} = %v, want 0 (-1: absent)", in, v)
		}
	}
}
