package oauth

import (
	"crypto/ed25519"
	"math"
	"testing"
)

// A token signed by the ring whose iat or exp is an integer past what a
// date can be (beyond year 9999, up to the largest int64) is refused as
// malformed. time.Unix of an iat near the largest int64 overflows the
// time's own count and reads as a date long past, so such a token,
// issued "at the end of time", was taken as issued now; a float (1e300)
// already failed to decode into the claims.
func TestIatOutOfRangeRefused(t *testing.T) {
	e := startEnv(t, nil)
	good := e.ccToken()
	hdr, cl := headerOf(t, good), claimsOf(t, good)
	var priv ed25519.PrivateKey
	e.srv.ring.Load().signer(e.clock.Now()).priv.Raw(&priv)
	sign := func(b []byte) []byte { return ed25519.Sign(priv, b) }
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range cl {
			m[a] = b
		}
		m[k] = v
		return m
	}
	h := map[string]any{"alg": "EdDSA", "kid": hdr["kid"], "typ": "at+jwt"}
	for _, tc := range []struct {
		name string
		k    string
		v    any
	}{
		{"iat the largest int64", "iat", int64(math.MaxInt64)},
		{"iat past year 9999", "iat", int64(253402300800)},
		{"iat the smallest int64", "iat", int64(math.MinInt64)},
		{"iat 1e300", "iat", 1e300},
		{"exp the largest int64", "exp", int64(math.MaxInt64)},
		{"exp past year 9999", "exp", int64(253402300800)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.srv.VerifyAccessToken(forge(h, with(tc.k, tc.v), sign)); err != ErrTokenMalformed {
				t.Fatalf("VerifyAccessToken: %v, want ErrTokenMalformed", err)
			}
		})
	}
}
