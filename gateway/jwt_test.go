package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
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
