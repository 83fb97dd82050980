package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// A JSON Web Key Set need not name each key's algorithm ("alg" is
// OPTIONAL in RFC 7517, and several issuers leave it out) nor its kid, and
// may hold a symmetric (oct) key. The gateway's verifier takes the
// algorithm from the key, never from the token, and finds the key by the
// token's kid: with a key that names no alg or no kid, check-config, run
// and a reload took the file, and then every bearer token was refused 401
// "the token is not valid", nothing saying why. Such a set (and a
// symmetric key, a shared secret in a file README calls a public key set)
// is now refused with the key and what it lacks named; a key for
// encryption (use "enc") is left alone, and a set with no key to verify
// with is refused.
func TestJWKSKeysVerifierCannotUseRefused(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	sk, _ := jwk.FromRaw(priv)
	sk.Set(jwk.KeyIDKey, "k1")
	pub, _ := sk.PublicKey()
	tok, _ := jwt.NewBuilder().Issuer("https://auth.test").Subject("alice").Audience([]string{"wamp:realm1"}).
		IssuedAt(time.Now()).Expiration(time.Now().Add(5*time.Minute)).Claim("authrole", "user").Build()
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA, sk))
	if err != nil {
		t.Fatal(err)
	}
	set := func(mod func(k jwk.Key)) string {
		k, _ := pub.Clone()
		mod(k)
		s := jwk.NewSet()
		s.AddKey(k)
		b, _ := json.Marshal(s)
		return string(b)
	}
	oct, _ := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
	oct.Set(jwk.KeyIDKey, "h1")
	oct.Set(jwk.AlgorithmKey, jwa.HS256)
	octSet := jwk.NewSet()
	octSet.AddKey(oct)
	octJSON, _ := json.Marshal(octSet)

	cases := []struct{ name, jwks, want string }{
		{"no-alg", set(func(jwk.Key) {}), `names no "alg"`},
		{"no-kid", set(func(k jwk.Key) { k.Set(jwk.AlgorithmKey, jwa.EdDSA); k.Remove(jwk.KeyIDKey) }), `names no "kid"`},
		{"symmetric", string(octJSON), "symmetric"},
		{"only-enc", set(func(k jwk.Key) { k.Set(jwk.AlgorithmKey, jwa.EdDSA); k.Set(jwk.KeyUsageKey, "enc") }), "no key to verify signatures with"},
	}
	var bad []string
	for _, tc := range cases {
		f := writeFile(t, tc.name+".json", tc.jwks)
		path := writeFile(t, tc.name+".yaml", fmt.Sprintf("listeners: [{address: \"127.0.0.1:0\"}]\ngateway:\n  listen: \"127.0.0.1:0\"\n  bearer: {jwks_file: %s}\n", f))
		_, stderr, code := runCLI("check-config", path)
		if code == 0 || !strings.Contains(stderr, "gateway.bearer.jwks_file") || !strings.Contains(stderr, tc.want) {
			why := ""
			if v, err := newJWKSVerifier(&bearerConfig{JWKSFile: f}); err == nil {
				if _, err := v.VerifyBearer(context.Background(), string(signed)); err != nil {
					why = fmt.Sprintf("; a token signed with the key: %v", err)
				}
			}
			bad = append(bad, fmt.Sprintf("%s: check-config exit %d %q, want it refused naming %q%s", tc.name, code, strings.TrimSpace(stderr), tc.want, why))
		}
	}
	// The same key naming its alg and kid is taken, and verifies.
	good := writeFile(t, "good.json", set(func(k jwk.Key) { k.Set(jwk.AlgorithmKey, jwa.EdDSA) }))
	v, err := newJWKSVerifier(&bearerConfig{JWKSFile: good})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.VerifyBearer(context.Background(), string(signed)); err != nil || p.AuthID != "alice" {
		t.Errorf("a key naming its alg and kid: %v %v", p, err)
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d key sets:\n%s", len(bad), len(cases), strings.Join(bad, "\n"))
	}
}
