package oauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

// ccToken gets a client_credentials token of "backend" (realm1).
func (e *testEnv) ccToken() string {
	e.t.Helper()
	cc := clientcredentials.Config{ClientID: "backend", ClientSecret: backendSec, TokenURL: e.url + "/oauth/token"}
	tok, err := cc.Token(e.ctx())
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.AccessToken
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// forge builds a compact JWS from a header and claims, signed by sign
// (nil: empty signature).
func forge(hdr, claims map[string]any, sign func([]byte) []byte) string {
	h, _ := json.Marshal(hdr)
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(in))
	}
	return in + "." + b64(sig)
}

// claimsOf decodes a token's payload without verifying it.
func claimsOf(t *testing.T, tok string) map[string]any {
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func headerOf(t *testing.T, tok string) map[string]any {
	b, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	e := startEnv(t, nil)
	good := e.ccToken()
	hdr, cl := headerOf(t, good), claimsOf(t, good)
	if hdr["alg"] != "EdDSA" || hdr["typ"] != "at+jwt" || hdr["kid"] == "" {
		t.Fatalf("header %v", hdr)
	}
	for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "scope", "roles", "client_id"} {
		if _, ok := cl[k]; !ok {
			t.Errorf("claim %s missing from %v", k, cl)
		}
	}
	signer := e.srv.ring.Load().signer(e.clock.Now())
	var priv ed25519.PrivateKey
	signer.priv.Raw(&priv)
	ourSig := func(b []byte) []byte { return ed25519.Sign(priv, b) }
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range cl {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	hdrWith := func(k string, v any) map[string]any {
		m := map[string]any{"alg": "EdDSA", "kid": hdr["kid"], "typ": "at+jwt"}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	parts := strings.Split(good, ".")
	sigb, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sigb[5] ^= 1
	hmacSig := func(b []byte) []byte { // alg confusion: HMAC keyed with the public key
		m := hmac.New(sha256.New, priv.Public().(ed25519.PublicKey))
		m.Write(b)
		return m.Sum(nil)
	}
	for _, tc := range []struct {
		name string
		tok  string
		want error
	}{
		{"control: re-signed good token", forge(hdrWith("", nil), cl, ourSig), nil},
		{"tampered payload", parts[0] + "." + b64(mustJSON(with("sub", "admin"))) + "." + parts[2], ErrTokenSignature},
		{"tampered signature", parts[0] + "." + parts[1] + "." + b64(sigb), ErrTokenSignature},
		{"alg none", forge(hdrWith("alg", "none"), cl, nil), ErrTokenSignature},
		{"alg none without kid", forge(map[string]any{"alg": "none", "typ": "at+jwt"}, cl, nil), ErrTokenSignature},
		{"alg HS256 with the public key", forge(hdrWith("alg", "HS256"), cl, hmacSig), ErrTokenSignature},
		{"foreign key under our kid", forge(hdrWith("", nil), cl, func(b []byte) []byte { return ed25519.Sign(other, b) }), ErrTokenSignature},
		{"unknown kid", forge(hdrWith("kid", "nope"), cl, ourSig), ErrTokenSignature},
		{"embedded jwk", forge(hdrWith("jwk", map[string]any{"kty": "OKP"}), cl, ourSig), ErrTokenSignature},
		{"crit header", forge(hdrWith("crit", []string{"exp"}), cl, ourSig), ErrTokenSignature},
		{"wrong typ", forge(hdrWith("typ", "JWT"), cl, ourSig), ErrTokenClaims},
		{"no typ", forge(hdrWith("typ", nil), cl, ourSig), ErrTokenClaims},
		{"wrong issuer", forge(hdrWith("", nil), with("iss", "http://evil"), ourSig), ErrTokenClaims},
		{"no sub", forge(hdrWith("", nil), with("sub", nil), ourSig), ErrTokenClaims},
		{"no aud", forge(hdrWith("", nil), with("aud", nil), ourSig), ErrTokenClaims},
		{"two audiences", forge(hdrWith("", nil), with("aud", []string{"realm1", "realm2"}), ourSig), ErrTokenMalformed},
		{"iat in the future", forge(hdrWith("", nil), with("iat", e.clock.Now().Add(time.Hour).Unix()), ourSig), ErrTokenAhead},
		// ErrTokenAhead is not counted as a failure: a forgery with a
		// future iat must fail its signature check first.
		{"foreign key, iat in the future", forge(hdrWith("", nil), with("iat", e.clock.Now().Add(time.Hour).Unix()), func(b []byte) []byte { return ed25519.Sign(other, b) }), ErrTokenSignature},
		{"tampered payload, iat in the future", parts[0] + "." + b64(mustJSON(with("iat", e.clock.Now().Add(time.Hour).Unix()))) + "." + parts[2], ErrTokenSignature},
		{"expired", forge(hdrWith("", nil), with("exp", e.clock.Now().Unix()-1), ourSig), ErrTokenExpired},
		{"not a JWT", "hello", ErrTokenMalformed},
		{"four parts", good + ".x", ErrTokenMalformed},
		{"header not base64", "%%%." + parts[1] + "." + parts[2], ErrTokenMalformed},
		{"huge", strings.Repeat("a", 9000), ErrTokenMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.srv.VerifyAccessToken(tc.tok)
			if err != tc.want {
				t.Fatalf("VerifyAccessToken: %v, want %v", err, tc.want)
			}
		})
	}
	// aud names the realm: the caller compares it.
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "r2", "r2-secret")
	if st != 200 {
		t.Fatal(st, body)
	}
	if c, err := e.srv.VerifyAccessToken(body["access_token"].(string)); err != nil || c.Audience != "realm2" {
		t.Fatalf("realm2 token: %+v %v", c, err)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestTokenExpiryAndCache(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.CacheSize = 32 })
	tok := e.ccToken()
	c1, err := e.srv.VerifyAccessToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := e.srv.VerifyAccessToken(tok)
	if c1 != c2 {
		t.Fatal("a second verification did not come from the cache")
	}
	e.clock.Advance(DefaultAccessTokenLifetime - time.Second)
	if _, err := e.srv.VerifyAccessToken(tok); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	e.clock.Advance(time.Second)
	if _, err := e.srv.VerifyAccessToken(tok); err != ErrTokenExpired {
		t.Fatalf("at expiry (cached): %v", err)
	}
	e.srv.cache.clear()
	if _, err := e.srv.VerifyAccessToken(tok); err != ErrTokenExpired {
		t.Fatalf("at expiry (uncached): %v", err)
	}
	// The cache stays within its bound.
	for i := 0; i < 100; i++ {
		if _, err := e.srv.VerifyAccessToken(e.ccToken()); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.srv.cache.len(); n > 32 {
		t.Fatalf("cache holds %d tokens, bound 32", n)
	}
}

// RFC 7009 revocation of access and refresh tokens; RFC 7662
// introspection.
func TestRevokeAndIntrospect(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("backend", backendSec, "read")
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	introspect := func(token string) map[string]any {
		st, body := e.post("/oauth/introspect", url.Values{"token": {token}}, "backend", backendSec)
		if st != 200 {
			t.Fatalf("introspect: %d %v", st, body)
		}
		return body
	}
	if m := introspect(tok.AccessToken); m["active"] != true || m["sub"] != "alice" || m["client_id"] != "backend" || m["scope"] != "read" || m["aud"] != "realm1" {
		t.Fatalf("introspection of a live access token: %v", m)
	}
	if m := introspect(tok.RefreshToken); m["active"] != true || m["token_type"] != "refresh_token" {
		t.Fatalf("introspection of a live refresh token: %v", m)
	}
	if m := introspect("garbage"); m["active"] != false || len(m) != 1 {
		t.Fatalf("introspection of garbage: %v", m)
	}
	// Introspection is for confidential clients, of the token's realm.
	st, body := e.post("/oauth/introspect", url.Values{"token": {tok.AccessToken}, "client_id": {"device"}}, "", "")
	wantOAuthError(t, st, body, 401, "invalid_client")
	if st, m := e.post("/oauth/introspect", url.Values{"token": {tok.AccessToken}}, "r2", "r2-secret"); st != 200 || m["active"] != false {
		t.Fatalf("introspection from another realm: %d %v", st, m)
	}
	// Another client cannot revoke the access token.
	st, body = e.post("/oauth/revoke", url.Values{"token": {tok.AccessToken}}, "r2", "r2-secret")
	wantOAuthError(t, st, body, 400, "unauthorized_client")
	// Revoke the access token: refused from now on, even if cached.
	st, _ = e.post("/oauth/revoke", url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if _, err := e.srv.VerifyAccessToken(tok.AccessToken); err != ErrTokenRevoked {
		t.Fatalf("revoked access token: %v", err)
	}
	if m := introspect(tok.AccessToken); m["active"] != false {
		t.Fatalf("introspection of a revoked token: %v", m)
	}
	// The refresh token still works (only the access token was revoked).
	tok2, err := refreshVia(e, cfg, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	// Revoke the refresh token: its login ends, access tokens included.
	st, _ = e.post("/oauth/revoke", url.Values{"token": {tok2.RefreshToken}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("revoke refresh: %d", st)
	}
	if _, err := refreshVia(e, cfg, tok2.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("revoked refresh token: %v", err)
	}
	if _, err := e.srv.VerifyAccessToken(tok2.AccessToken); err != ErrTokenRevoked {
		t.Fatalf("access token of a revoked refresh token: %v", err)
	}
	// Unknown tokens and repeated revocations are answered 200 (RFC 7009 §2.2).
	for _, tk := range []string{"garbage", tok2.RefreshToken, tok.AccessToken} {
		if st, _ := e.post("/oauth/revoke", url.Values{"token": {tk}}, "backend", backendSec); st != 200 {
			t.Fatalf("revoking %q again: %d", tk[:8], st)
		}
	}
	st, body = e.post("/oauth/revoke", url.Values{"token": {"x"}}, "backend", "wrong")
	wantOAuthError(t, st, body, 401, "invalid_client")
}

// TestMetadataWithoutScopes: when no client has scopes, the metadata
// leaves scopes_supported out instead of writing null where RFC 8414
// wants a JSON array.
func TestMetadataWithoutScopes(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		for i := range o.Realms {
			for j := range o.Realms[i].Clients {
				o.Realms[i].Clients[j].Scopes = nil
			}
		}
	})
	resp, err := e.hc.Get(e.url + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var md map[string]json.RawMessage
	if err := json.Unmarshal(body, &md); err != nil {
		t.Fatal(err)
	}
	if v, ok := md["scopes_supported"]; ok {
		t.Fatalf("scopes_supported = %s without any scope", v)
	}
	if md["issuer"] == nil {
		t.Fatalf("metadata %s", body)
	}
}

func TestMetadataAndJWKS(t *testing.T) {
	e := startEnv(t, nil)
	resp, err := e.hc.Get(e.url + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	for k, want := range map[string]string{
		"issuer": e.url, "token_endpoint": e.url + "/oauth/token", "jwks_uri": e.url + "/.well-known/jwks.json",
		"revocation_endpoint": e.url + "/oauth/revoke", "introspection_endpoint": e.url + "/oauth/introspect",
		"device_authorization_endpoint": e.url + "/oauth/device_authorization", "authorization_endpoint": e.url + "/oauth/authorize",
	} {
		if md[k] != want {
			t.Errorf("%s = %v, want %s", k, md[k], want)
		}
	}
	gts, _ := json.Marshal(md["grant_types_supported"])
	for _, g := range []string{"password", "client_credentials", "refresh_token", deviceGrantType, "authorization_code"} {
		if !strings.Contains(string(gts), `"`+g+`"`) {
			t.Errorf("grant_types_supported %s lacks %s", gts, g)
		}
	}
	if cm, _ := json.Marshal(md["code_challenge_methods_supported"]); string(cm) != `["S256"]` {
		t.Errorf("code_challenge_methods_supported %s", cm)
	}
	resp, err = e.hc.Get(e.url + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	json.Unmarshal(body, &set)
	if len(set.Keys) != 1 || set.Keys[0]["kty"] != "OKP" || set.Keys[0]["alg"] != "EdDSA" || set.Keys[0]["use"] != "sig" || set.Keys[0]["kid"] == nil {
		t.Fatalf("JWKS %s", body)
	}
	if _, private := set.Keys[0]["d"]; private {
		t.Fatal("the JWKS publishes a private key")
	}
	// Wrong methods and paths.
	for _, tc := range []struct{ method, path string }{{"GET", "/oauth/token"}, {"PUT", "/oauth/revoke"}, {"GET", "/oauth/nope"}} {
		req, _ := http.NewRequest(tc.method, e.url+tc.path, nil)
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 && resp.StatusCode != 404 {
			t.Errorf("%s %s: %d", tc.method, tc.path, resp.StatusCode)
		}
	}
	// A JSON body is not a form.
	req, _ := http.NewRequest("POST", e.url+"/oauth/token", strings.NewReader(`{"grant_type":"client_credentials"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, _ = e.hc.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("JSON body: %d", resp.StatusCode)
	}
}

func TestES256(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.Algorithm = "ES256" })
	tok := e.ccToken()
	if h := headerOf(t, tok); h["alg"] != "ES256" {
		t.Fatalf("header %v", h)
	}
	if _, err := e.srv.VerifyAccessToken(tok); err != nil {
		t.Fatal(err)
	}
	e.verifyThirdParty(tok, "realm1", "ES256")
}

// Keys from files: the first signs, the others verify (a manual rotation).
func TestStaticSigningKeys(t *testing.T) {
	oldPEM, _ := GenerateKeyPEM("ES256")
	newPEM, _ := GenerateKeyPEM("EdDSA")
	oldKey, err := ParsePrivateKeyPEM(oldPEM)
	if err != nil {
		t.Fatal(err)
	}
	newKey, _ := ParsePrivateKeyPEM(newPEM)
	e1 := startEnv(t, func(o *Options) { o.SigningKeys = append(o.SigningKeys, oldKey) })
	oldTok := e1.ccToken()
	e2 := startEnv(t, func(o *Options) { o.Issuer = e1.url; o.SigningKeys = append(o.SigningKeys, newKey, oldKey) })
	// e2 shares e1's issuer only in the token claims; its endpoints are at e2.url.
	if _, err := e2.srv.VerifyAccessToken(oldTok); err != nil {
		t.Fatalf("a token of the old key on the rotated server: %v", err)
	}
	var set struct{ Keys []map[string]any }
	json.Unmarshal(e2.srv.JWKS(), &set)
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(set.Keys))
	}
	st, body := e2.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
	if st != 200 {
		t.Fatal(st, body)
	}
	if h := headerOf(t, body["access_token"].(string)); h["alg"] != "EdDSA" {
		t.Fatalf("the rotated server signs with %v, want the first key (EdDSA)", h["alg"])
	}
	// Bad key files.
	if _, err := ParsePrivateKeyPEM([]byte("nope")); err == nil {
		t.Error("garbage PEM accepted")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := New(Options{Issuer: "http://127.0.0.1:1", SigningKeys: []crypto.Signer{p384}}); err == nil || !strings.Contains(err.Error(), "P-256") {
		t.Errorf("a P-384 key: %v", err)
	}
}

// Generated keys rotate: the new key is published before it signs, the old
// one stays until its tokens expired, and a second node on the same store
// follows.
func TestKeyRotation(t *testing.T) {
	store := newMemStore(time.Now)
	e := startEnv(t, func(o *Options) { o.Store = store; o.RotateEvery = time.Hour; o.SyncInterval = time.Second })
	node2 := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = e.url; o.now = e.clock.Now; o.SyncInterval = time.Second })
	kid1 := headerOf(t, e.ccToken())["kid"]
	if n := len(e.srv.ring.Load().keys); n != 1 {
		t.Fatalf("%d keys at start", n)
	}
	e.clock.Advance(time.Hour)
	e.srv.syncOnce(false) // rotation due: a new key, signing in 2 s and the skew (30 s)
	ring := e.srv.ring.Load()
	if len(ring.keys) != 2 {
		t.Fatalf("%d keys after rotation", len(ring.keys))
	}
	tokOld := e.ccToken()
	if headerOf(t, tokOld)["kid"] != kid1 {
		t.Fatal("the new key signs before it has been published for publishAhead")
	}
	node2.srv.syncOnce(false)
	if !strings.Contains(string(node2.srv.JWKS()), ring.keys[1].kid) {
		t.Fatal("node 2 does not publish the new key after a sync")
	}
	e.clock.Advance(2*time.Second + 30*time.Second)
	tokNew := e.ccToken()
	kid2 := headerOf(t, tokNew)["kid"]
	if kid2 == kid1 {
		t.Fatal("the new key does not sign after publishAhead and the skew")
	}
	for _, n := range []*testEnv{e, node2} {
		for _, tk := range []string{tokOld, tokNew} {
			if _, err := n.srv.VerifyAccessToken(tk); err != nil {
				t.Fatalf("verification across the rotation: %v", err)
			}
		}
	}
	// The old key stays until every token it signed has expired.
	e.clock.Advance(DefaultAccessTokenLifetime)
	e.srv.syncOnce(false)
	if len(e.srv.ring.Load().keys) != 2 {
		t.Fatal("the old key was dropped while its tokens could still be valid (skew)")
	}
	e.clock.Advance(30*time.Second + time.Minute + time.Second)
	e.srv.syncOnce(false)
	if keys := e.srv.ring.Load().keys; len(keys) != 1 || keys[0].kid != kid2 {
		t.Fatalf("after every old token expired: %d keys", len(keys))
	}
	if tk := e.ccToken(); headerOf(t, tk)["kid"] != kid2 {
		t.Fatal("a token after the drop is not signed by the new key")
	} else if _, err := e.srv.VerifyAccessToken(tk); err != nil {
		t.Fatal(err)
	}
}

// Two nodes on one store: a token issued on one refreshes, revokes and
// verifies on the other.
func TestSharedStoreNodes(t *testing.T) {
	store := newMemStore(time.Now)
	a := startEnv(t, func(o *Options) { o.Store = store })
	b := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = a.url; o.now = a.clock.Now })
	cfgA := a.config("backend", backendSec)
	tok, err := cfgA.PasswordCredentialsToken(a.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.srv.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("node B verifies node A's token: %v", err)
	}
	st, body := b.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("node B refreshes node A's token: %d %v", st, body)
	}
	// Reuse on A of the token B rotated: detected.
	if _, err := refreshVia(a, cfgA, tok.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("reuse across nodes: %v", err)
	}
	// A revocation on B reaches A at A's next sync.
	tok2 := a.ccToken()
	b.srv.VerifyAccessToken(tok2)
	if st, _ := b.post("/oauth/revoke", url.Values{"token": {tok2}}, "backend", backendSec); st != 200 {
		t.Fatal(st)
	}
	a.srv.syncOnce(false)
	if _, err := a.srv.VerifyAccessToken(tok2); err != ErrTokenRevoked {
		t.Fatalf("node A after sync: %v, want revoked", err)
	}
}

// A reload that shortens a realm's access token lifetime does not make
// the next key rotation drop the previous signing key while tokens it
// signed under the longer lifetime are still valid: planRing keeps a
// retired key for the lifetime of a configuration replaced less than that
// long ago too (config.oldTTL, as revocations do: tokenTTL). It kept it
// for the current configuration's maxTTL only, and the token was refused
// as forged (ErrTokenSignature: WAMP authentication_failed, gateway 401)
// 50 minutes before its expiry. README: "a key that stopped signing stays
// until every token it signed has expired". Once they have, it goes.
func TestKeyRotationAfterShorterLifetime(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		o.RotateEvery = time.Hour
		o.Realms[0].AccessTokenLifetime = time.Hour
	})
	e.clock.Advance(59 * time.Minute)
	tok := e.ccToken() // signed by the first key, valid for an hour
	realms := testRealms(t)
	realms[0].AccessTokenLifetime = 5 * time.Minute
	if err := e.srv.SetRealms(realms); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	e.srv.syncOnce(false) // rotation due: a new key, signing after publishAhead
	e.clock.Advance(e.srv.publishAhead)
	e.srv.syncOnce(false)
	e.clock.Advance(5*time.Minute + 30*time.Second + time.Minute + time.Second)
	e.srv.syncOnce(false)
	left := time.Unix(int64(claimsOf(t, tok)["exp"].(float64)), 0).Sub(e.clock.Now())
	_, err := e.srv.VerifyAccessToken(tok)
	t.Logf("%d keys in the ring; the hour-long token, %v before its expiry: %v", len(e.srv.ring.Load().keys), left, err)
	if err != nil {
		t.Errorf("a token issued before the reload, %v before its expiry, is refused: %v", left, err)
	}
	// Past the token's expiry (plus skew and a minute), the old key goes.
	kid := headerOf(t, tok)["kid"].(string)
	e.clock.Advance(left + e.srv.skew + time.Minute + time.Second)
	e.srv.syncOnce(false)
	if e.srv.ring.Load().byKid[kid] != nil {
		t.Errorf("the old key is still in the ring once every token it signed expired")
	}
}

// Introspection (RFC 7662) answers "active": false for tokens the router
// itself refuses since a reload: an access token whose user or client it
// removed (StillValid: ErrGrantWithdrawn; README: "a token whose client,
// user or role a reload removed" is refused like a revoked one), and a
// refresh token whose user it removed (the refresh grant refuses it). An
// access token whose principal lost one of its roles stays active with
// the roles still held. Before, all of them were introspected as active
// with the roles as issued, and a resource server that introspects kept
// accepting them until they expired (up to the realm's lifetime, 24 h at
// most).
func TestIntrospectWithdrawnToken(t *testing.T) {
	e := startEnv(t, nil)
	bob, err := e.config("backend", backendSec).PasswordCredentialsToken(e.ctx(), "bob", bobPW)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := e.config("backend", backendSec).PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	cli := e.cliToken("alice", alicePW)
	e.users.remove("realm1", "bob")
	e.users.mu.Lock()
	e.users.users["realm1"]["alice"] = testUser{alicePW, []string{"user"}} // admin taken away
	e.users.mu.Unlock()
	realms := testRealms(t)
	realms[0].Clients = realms[0].Clients[:4] // the "cli" client is removed
	if err := e.srv.SetRealms(realms); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, tok, role string }{
		{"a token of a removed user", bob.AccessToken, "viewer"},
		{"a token of a removed client", cli, "user"},
	} {
		c, err := e.srv.VerifyAccessToken(tc.tok)
		if err != nil {
			t.Fatal(err)
		}
		sv := e.srv.StillValid(c, tc.role)
		st, m := e.post("/oauth/introspect", url.Values{"token": {tc.tok}}, "backend", backendSec)
		t.Logf("%s: StillValid %v; introspection %d %v", tc.name, sv, st, m["active"])
		if sv == nil || st != 200 || m["active"] != false || len(m) != 1 {
			t.Errorf("%s, refused by StillValid (%v), is introspected as %d %v", tc.name, sv, st, m)
		}
	}
	st, m := e.post("/oauth/introspect", url.Values{"token": {bob.RefreshToken}}, "backend", backendSec)
	t.Logf("a refresh token of a removed user: introspection %d %v", st, m["active"])
	if st != 200 || m["active"] != false || len(m) != 1 {
		t.Errorf("a refresh token of a removed user is introspected as %d %v", st, m)
	}
	st, m = e.post("/oauth/introspect", url.Values{"token": {alice.AccessToken}}, "backend", backendSec)
	t.Logf("a token whose user lost a role: introspection %d %v %v", st, m["active"], m["roles"])
	if roles, _ := m["roles"].([]any); st != 200 || m["active"] != true || len(roles) != 1 || roles[0] != "user" {
		t.Errorf("a token of alice (user, admin), admin since taken away, is introspected as %d %v, want active, roles [user]", st, m)
	}
}
