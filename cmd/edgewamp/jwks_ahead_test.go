package main

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestJWKSBearerAheadNotCounted: a token of the jwks_file's issuer whose
// iat or nbf is more than the skew (30 s) ahead of the router's clock (the
// issuer's clock leads, or the router's stepped back) is genuine, its
// signature checked: refused 401 until the clock gets there, saying so,
// and not counted as a failed authentication. It was refused "the token
// is not valid" and counted as a forgery: 30 requests of one client with
// its fresh token locked its address out, 429, other clients' good tokens
// too. As for the router's own tokens (07d49d4), its next uses are refused
// without a signature check.
func TestJWKSBearerAheadNotCounted(t *testing.T) {
	keys := newJWKS(t)
	g := startJWKSBridge(t, keys)
	now := time.Now()
	unix := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	base := `"iss":"https://auth.test","sub":"alice","aud":["wamp:realm1"],"authrole":"user"`
	for _, tc := range []struct{ name, dates string }{
		{"iat 5 min ahead", `"iat":` + unix(5*time.Minute) + `,"exp":` + unix(time.Hour)},
		{"nbf 5 min ahead", `"iat":` + unix(0) + `,"nbf":` + unix(5*time.Minute) + `,"exp":` + unix(time.Hour)},
	} {
		tok := keys.signedPayload(t, "{"+base+","+tc.dates+"}")
		for i := range 35 { // past gateway.limits.auth_failures (30 a minute)
			r, body := g.do(t, "POST", "/wamp/realm1/publish/com.t", `{"args":[1]}`, "Authorization", tok)
			if r.StatusCode != 401 {
				t.Fatalf("%s: request %d: %d %s, want 401", tc.name, i+1, r.StatusCode, body)
			}
			if i == 0 && !strings.Contains(string(body), "ahead") {
				t.Errorf("%s: the 401 does not say why: %s", tc.name, body)
			}
		}
	}
	fresh := keys.signedPayload(t, "{"+base+`,"iat":`+unix(0)+`,"exp":`+unix(time.Hour)+"}")
	if r, body := g.do(t, "POST", "/wamp/realm1/publish/com.t", `{"args":[2]}`, "Authorization", fresh); r.StatusCode/100 != 2 {
		t.Fatalf("a fresh token after the requests with ones issued ahead: %d %s, want it accepted", r.StatusCode, body)
	}
}
