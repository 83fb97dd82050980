package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// TestJWKSEncryptionKeyDoesNotShadowItsKid: keys with "use": "enc" are
// ignored (README), but one listed before a signing key of the same kid
// (an issuer publishing a key pair's signing and encryption halves under
// one kid) was what the verifier found for that kid (jwk.Set.LookupKeyID
// takes the first): it verifies nothing, so every token of the signing
// key was refused 401, while check-config and the reload said the file
// was good.
func TestJWKSEncryptionKeyDoesNotShadowItsKid(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	sig := jwksWithKid(t, priv, "k1")
	xpriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := jwk.FromRaw(&xpriv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	enc.Set(jwk.KeyIDKey, "k1")
	enc.Set(jwk.KeyUsageKey, "enc")
	enc.Set(jwk.AlgorithmKey, "ECDH-ES")
	pub, err := sig.priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	set.AddKey(enc)
	set.AddKey(pub)
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := newJWKSVerifier(&bearerConfig{JWKSFile: file})
	if err != nil {
		t.Fatalf("the file is refused: %v", err)
	}
	tok := sig.signed(t, "at+jwt", nil)[len("Bearer "):]
	p, err := v.VerifyBearer(context.Background(), tok)
	if err != nil {
		t.Fatalf("a token of the signing key of kid k1, listed after an encryption key of that kid: %v", err)
	}
	ids := v.RevocationIDs(p)
	if len(ids) != 1 || ids[0] != keyID(pub) {
		t.Fatalf("revocation ids %q, want the signing key's %q", ids, keyID(pub))
	}
}
