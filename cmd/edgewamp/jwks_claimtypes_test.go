package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// signedPayload returns keys' token (typ at+jwt) over the JSON claims
// payload as written: a claim of the type a JWT library would not write.
func (j *jwks) signedPayload(t *testing.T, payload string) string {
	t.Helper()
	h := jws.NewHeaders()
	h.Set(jws.TypeKey, "at+jwt")
	s, err := jws.Sign([]byte(payload), jws.WithKey(jwa.EdDSA, j.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + string(s)
}

// TestJWKSBearerRegisteredClaimTypes: RFC 7519 §4.1 has exp, nbf and iat
// NumericDate values (JSON numbers), iss, sub and jti strings, and aud a
// string or an array of strings. jwx takes a date written as a string
// (a number in quotes, even an RFC 3339 date) and reads it: a token whose
// exp is "<a time in an hour>" or "2099-01-01T00:00:00Z" was accepted,
// good until then, though no conforming issuer writes one and the
// issuer's own libraries and the router's OAuth2 server refuse it. A
// token whose registered claims have the wrong type is refused as a
// malformed one is: 401, "the token is not valid", counted as a failed
// authentication. A number that is not an integer stays good (NumericDate
// allows one).
func TestJWKSBearerRegisteredClaimTypes(t *testing.T) {
	keys := newJWKS(t)
	g := startJWKSBridge(t, keys)
	now := time.Now()
	unix := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	base := `"iss":"https://auth.test","sub":"alice","aud":["wamp:realm1"],"authrole":"user"`
	good := `"iat":` + unix(0) + `,"exp":` + unix(time.Hour)
	malformed := func() (int, string, string) {
		r, body := g.do(t, "POST", "/wamp/realm1/publish/com.t", `{"args":[1]}`, "Authorization", "Bearer not.a.token")
		return r.StatusCode, string(body), r.Header.Get("WWW-Authenticate")
	}
	wantSt, wantBody, wantChallenge := malformed()
	if wantSt != http.StatusUnauthorized {
		t.Fatalf("a malformed token: %d %s", wantSt, wantBody)
	}
	for _, tc := range []struct {
		name, claims string
		ok           bool
	}{
		{"numbers", base + "," + good, true},
		{"fractional exp", base + `,"iat":` + unix(0) + `,"exp":` + unix(time.Hour) + `.5`, true},
		{"exp a string of the future", base + `,"iat":` + unix(0) + `,"exp":"` + unix(time.Hour) + `"`, false},
		{"exp a string of the far future", base + `,"iat":` + unix(0) + `,"exp":"99999999999"`, false},
		{"exp an RFC 3339 string", base + `,"iat":` + unix(0) + `,"exp":"2099-01-01T00:00:00Z"`, false},
		{"exp a string of the past", base + `,"iat":` + unix(-2*time.Hour) + `,"exp":"` + unix(-time.Hour) + `"`, false},
		{"exp true", base + `,"iat":` + unix(0) + `,"exp":true`, false},
		{"nbf a string", base + "," + good + `,"nbf":"` + unix(-time.Minute) + `"`, false},
		{"iat a string", base + `,"exp":` + unix(time.Hour) + `,"iat":"` + unix(0) + `"`, false},
		{"sub a number", `"iss":"https://auth.test","sub":42,"aud":["wamp:realm1"],"authrole":"user",` + good, false},
		{"iss a list", `"iss":["https://auth.test"],"sub":"alice","aud":["wamp:realm1"],"authrole":"user",` + good, false},
		{"aud a number in a list", `"iss":"https://auth.test","sub":"alice","aud":["wamp:realm1",7],"authrole":"user",` + good, false},
		{"aud an object", `"iss":"https://auth.test","sub":"alice","aud":{"wamp:realm1":true},"authrole":"user",` + good, false},
		{"jti a number", base + "," + good + `,"jti":12345`, false},
		{"exp null", base + `,"iat":` + unix(0) + `,"exp":null`, false},
	} {
		r, body := g.do(t, "POST", "/wamp/realm1/publish/com.t", `{"args":[1]}`, "Authorization", keys.signedPayload(t, "{"+tc.claims+"}"))
		switch {
		case tc.ok && r.StatusCode/100 != 2:
			t.Errorf("%s: %d %s, want it accepted", tc.name, r.StatusCode, body)
		case !tc.ok && r.StatusCode/100 == 2:
			t.Errorf("%s: %d, accepted; want it refused as a malformed token (401)", tc.name, r.StatusCode)
		case !tc.ok && (r.StatusCode != wantSt || string(body) != wantBody || r.Header.Get("WWW-Authenticate") != wantChallenge):
			t.Errorf("%s: %d %s (%s), want what a malformed token gets: %d %s (%s)", tc.name, r.StatusCode, strings.TrimSpace(string(body)),
				r.Header.Get("WWW-Authenticate"), wantSt, strings.TrimSpace(wantBody), wantChallenge)
		}
	}
}
