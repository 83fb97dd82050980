package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Real JWTs in the tests: an Ed25519 key signs tokens (as the OAuth2
// server does), and jwtVerifier checks them against its JWKS with jwx —
// the same checks cmd's JWKS verifier makes. Nothing accepts a token it
// should not.

type jwtIssuer struct {
	t    *testing.T
	priv jwk.Key
	set  jwk.Set
}

func newJWTIssuer(t *testing.T) *jwtIssuer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(priv)
	if err != nil {
		t.Fatal(err)
	}
	jwk.AssignKeyID(k)
	k.Set(jwk.AlgorithmKey, jwa.EdDSA)
	pub, err := k.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	set.AddKey(pub)
	return &jwtIssuer{t: t, priv: k, set: set}
}

// token signs a token for sub in realm with role, scopes and a lifetime.
func (j *jwtIssuer) token(sub, realm, role, scope string, ttl time.Duration, extra map[string]any) string {
	b := jwt.NewBuilder().Issuer("https://edgewamp.test").Subject(sub).Audience([]string{"wamp:" + realm}).
		IssuedAt(time.Now()).Expiration(time.Now().Add(ttl)).Claim("authrole", role)
	if scope != "" {
		b = b.Claim("scope", scope)
	}
	for k, v := range extra {
		b = b.Claim(k, v)
	}
	tok, err := b.Build()
	if err != nil {
		j.t.Fatal(err)
	}
	s, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA, j.priv))
	if err != nil {
		j.t.Fatal(err)
	}
	return string(s)
}

// jwtVerifier is a BearerVerifier over a JWKS.
type jwtVerifier struct {
	set    jwk.Set
	issuer string
}

func (v *jwtVerifier) VerifyBearer(_ context.Context, token string) (*Principal, error) {
	tok, err := jwt.Parse([]byte(token), jwt.WithKeySet(v.set), jwt.WithValidate(true),
		jwt.WithIssuer(v.issuer), jwt.WithAcceptableSkew(5*time.Second))
	if err != nil {
		return nil, errors.New("token rejected")
	}
	p := &Principal{AuthID: tok.Subject(), Expires: tok.Expiration(), Claims: tok.PrivateClaims()}
	for _, a := range tok.Audience() {
		if r, ok := strings.CutPrefix(a, "wamp:"); ok {
			p.Realm = r
		}
	}
	if r, ok := tok.PrivateClaims()["authrole"].(string); ok {
		p.AuthRole = r
		p.Roles = []string{r}
	}
	if s, ok := tok.PrivateClaims()["scope"].(string); ok {
		p.Scopes = strings.Fields(s)
	}
	p.Claims["sub"] = tok.Subject()
	return p, nil
}

// TestBearerPrincipalNotWAMPTextRefused: a genuine bearer token whose
// subject (the authid) or role starts with NUL names a principal the
// router cannot give JSON peers (a JSON string starting with NUL is
// binary in WAMP): it was accepted, and a disclosing JSON callee's call
// then failed 400 "cannot be converted", the on_join meta event went to
// no JSON subscriber and wamp.session.get failed. It is refused at
// authentication, 401 invalid_token naming the claim, counted as a
// failed bearer authentication; the callee never sees the call. The env
// runs the gateway behind the event loop's HTTP lane (which hands bearer
// requests to net/http) and, with EDGEWAMP_TEST_GATEWAY_LANE=off,
// without it.
func TestBearerPrincipalNotWAMPTextRefused(t *testing.T) {
	iss := newJWTIssuer(t)
	e := newEnv(t, func(o *Options) { o.Bearer = &jwtVerifier{set: iss.set, issuer: "https://edgewamp.test"} })
	callee := e.dial("realm1", proto.JSON)
	var calls atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := callee.Register(ctx, "com.who", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		calls.Add(1)
		return &client.Result{Args: []any{inv.CallerAuthID, inv.CallerAuthRole}}, nil
	}, &client.RegisterOptions{DiscloseCaller: true}); err != nil {
		t.Fatal(err)
	}
	good := iss.token("alice", "realm1", "user", "", time.Minute, nil)
	if r, body := e.do("POST", "/wamp/realm1/call/com.who", `{}`, "Authorization", "Bearer "+good); r.StatusCode != 200 || string(body) != `{"args":["alice","user"],"kwargs":{}}` {
		t.Fatalf("a good token's call: %d %s", r.StatusCode, body)
	}
	failures := func() uint64 {
		e.gw.metrics.authMu.Lock()
		defer e.gw.metrics.authMu.Unlock()
		if n := e.gw.metrics.auth[[2]string{"bearer", "failure"}]; n != nil {
			return n.Load()
		}
		return 0
	}
	// send: a call, or an event stream (its request made with a deadline:
	// one opened is not read).
	send := func(method, path, tok string) (*http.Response, []byte) {
		if method == "POST" {
			return e.do(method, path, "", "Authorization", "Bearer "+tok)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, _ := e.stream(ctx, method, path, "", "Authorization", "Bearer "+tok)
		if r.StatusCode == 200 {
			return r, []byte("(an event stream opened)")
		}
		b, _ := io.ReadAll(r.Body)
		return r, b
	}
	for _, c := range []struct{ name, tok, claim string }{
		{"sub", iss.token("\x00alice", "realm1", "user", "", time.Minute, nil), "sub claim"},
		{"authrole", iss.token("alice", "realm1", "\x00user", "", time.Minute, nil), "authrole or roles claim"},
	} {
		before := failures()
		for _, req := range [][2]string{{"POST", "/wamp/realm1/call/com.who"}, {"GET", "/wamp/realm1/events/com.news"}} {
			r, body := send(req[0], req[1], c.tok)
			if r.StatusCode != 401 {
				t.Errorf("%s starting with NUL: %s %s: %d %s, want 401 %s", c.name, req[0], req[1], r.StatusCode, strings.TrimSpace(string(body)), proto.URIAuthenticationFailed)
				continue
			}
			p := expectProblem(t, r, body, 401, proto.URIAuthenticationFailed)
			if !strings.Contains(p.Detail, c.claim) || !strings.Contains(p.Detail, "NUL") {
				t.Errorf("%s: detail %q does not name the %s", c.name, p.Detail, c.claim)
			}
			if ch := r.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, c.claim) {
				t.Errorf("%s: WWW-Authenticate %q, want invalid_token naming the %s", c.name, ch, c.claim)
			}
		}
		if n := failures() - before; n != 2 {
			t.Errorf("%s: %d failed bearer authentications counted, want 2", c.name, n)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the callee got %d calls, want 1 (the good token's)", n)
	}
}
