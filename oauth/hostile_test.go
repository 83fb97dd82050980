package oauth

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Records the server did not write: a mesh's shared store holds what
// every node wrote, an older or newer version's records, or a damaged
// file. The server trusts none of them further than its configuration
// allows: a record that does not decode refuses its grant (never a panic,
// never a token), a record that decodes but claims more than the
// configuration grants is cut down to it or refused, and the key ring and
// revocation set survive garbage written over them.

// overwrite replaces key's value in the store, keeping its TTL short.
func overwrite(t *testing.T, s Store, key string, value []byte) {
	t.Helper()
	ctx := context.Background()
	e, err := s.Get(ctx, key)
	if err != nil {
		if _, err := s.Create(ctx, key, value, time.Hour); err != nil {
			t.Fatalf("create %s: %v", key, err)
		}
		return
	}
	if _, err := s.Update(ctx, key, value, e.Revision, time.Hour); err != nil {
		t.Fatalf("update %s: %v", key, err)
	}
}

// edit decodes key's JSON record, lets f change it, and writes it back.
func edit(t *testing.T, s Store, key string, f func(m map[string]any)) {
	t.Helper()
	e, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	var m map[string]any
	if err := json.Unmarshal(e.Value, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, _ := json.Marshal(m)
	overwrite(t, s, key, b)
}

var garbage = [][]byte{[]byte("garbage"), []byte("null"), []byte(`{"gen":"x"}`), []byte(`[1,2]`), {0xff, 0xfe}}

func TestHostileRefreshFamilies(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("backend", backendSec)
	// A family that does not decode: invalid_grant (not a 503 for ever),
	// with a warning.
	for i, g := range garbage {
		tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
		if err != nil {
			t.Fatal(err)
		}
		rt, _ := parseRefreshToken(tok.RefreshToken)
		overwrite(t, e.store, "rt."+rt.fam, g)
		if _, err := refreshVia(e, cfg, tok.RefreshToken); retrieveErr(err) != "invalid_grant" {
			t.Errorf("garbage %d in the family: %v, want invalid_grant", i, err)
		}
	}
	if !strings.Contains(e.logs.String(), "does not decode") {
		t.Error("a record that does not decode was not logged")
	}
	// A family moved to another realm (whose user is someone else): the
	// token is for the client's realm only, so the grant is refused.
	tok, _ := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	rt, _ := parseRefreshToken(tok.RefreshToken)
	edit(t, e.store, "rt."+rt.fam, func(m map[string]any) { m["realm"], m["sub"] = "realm2", "carol" })
	if _, err := refreshVia(e, cfg, tok.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Errorf("a family of another realm: %v, want invalid_grant", err)
	}
	// A family that claims scopes the client may not have: they are cut.
	tok, _ = cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	rt, _ = parseRefreshToken(tok.RefreshToken)
	edit(t, e.store, "rt."+rt.fam, func(m map[string]any) { m["scope"] = "read admin:all" })
	t2, err := refreshVia(e, cfg, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := e.srv.VerifyAccessToken(t2.AccessToken); err != nil || !slices.Equal(c.Scopes, []string{"read"}) || !slices.Equal(c.Roles, []string{"user", "admin"}) {
		t.Errorf("refreshed from a family claiming scope admin:all: %+v %v", c, err)
	}
	// An index of logins far beyond the bound (a damaged record): the next
	// login still works and the index is cut back.
	key := indexKey("realm1", "backend", "alice")
	var idx famIndex
	for i := 0; i < 300; i++ {
		idx.Fams = append(idx.Fams, famRef{ID: strconv.Itoa(i), Exp: 1, Created: int64(i)})
	}
	b, _ := json.Marshal(idx)
	overwrite(t, e.store, key, b)
	if _, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW); err != nil {
		t.Fatalf("a login over an oversized index: %v", err)
	}
	ie, _ := e.store.Get(context.Background(), key)
	json.Unmarshal(ie.Value, &idx)
	if len(idx.Fams) > 2*DefaultMaxRefreshTokens+8 {
		t.Errorf("the index holds %d logins after a login, want it cut to the bound", len(idx.Fams))
	}
	for _, g := range garbage {
		overwrite(t, e.store, key, g)
		if _, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW); err != nil {
			t.Fatalf("a login over a garbage index %q: %v", g, err)
		}
	}
}

func TestHostileDeviceRecords(t *testing.T) {
	e := startEnv(t, nil)
	start := func() (string, string) {
		st, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
		if st != 200 {
			t.Fatalf("device authorization: %d %v", st, da)
		}
		return da["device_code"].(string), da["user_code"].(string)
	}
	poll := func(dc string) (int, map[string]any) {
		e.clock.Advance(time.Minute)
		return e.devicePoll(dc)
	}
	// Garbage in place of a pending code: invalid_grant.
	for _, g := range garbage {
		dc, _ := start()
		overwrite(t, e.store, "dc."+hashHex(dc), g)
		st, body := poll(dc)
		wantOAuthError(t, st, body, 400, "invalid_grant")
	}
	// "Approved" by a record, not by a person: for nobody, for a user of
	// another realm, for roles the user does not have.
	for name, f := range map[string]func(m map[string]any){
		"no principal": func(m map[string]any) { m["status"] = "approved" },
		"another realm": func(m map[string]any) {
			m["status"], m["realm"], m["sub"], m["roles"] = "approved", "realm2", "carol", []string{"user"}
		},
		"unknown user":  func(m map[string]any) { m["status"], m["sub"], m["roles"] = "approved", "mallory", []string{"admin"} },
		"foreign roles": func(m map[string]any) { m["status"], m["sub"], m["roles"] = "approved", "bob", []string{"admin"} },
		"no roles":      func(m map[string]any) { m["status"], m["sub"] = "approved", "alice" },
	} {
		dc, _ := start()
		edit(t, e.store, "dc."+hashHex(dc), f)
		if st, body := poll(dc); st != 400 || body["error"] != "invalid_grant" {
			t.Errorf("%s: %d %v, want invalid_grant", name, st, body)
		}
	}
	// Roles beyond the user's are dropped, the rest kept.
	dc, _ := start()
	edit(t, e.store, "dc."+hashHex(dc), func(m map[string]any) {
		m["status"], m["sub"], m["roles"] = "approved", "bob", []string{"admin", "viewer"}
	})
	st, body := poll(dc)
	if st != 200 {
		t.Fatalf("approved with one foreign role: %d %v", st, body)
	}
	if c, err := e.srv.VerifyAccessToken(body["access_token"].(string)); err != nil || !slices.Equal(c.Roles, []string{"viewer"}) {
		t.Errorf("claims %+v %v, want roles [viewer] only", c, err)
	}
	// A user code pointing at garbage: the page says unknown, nothing
	// crashes.
	_, uc := start()
	overwrite(t, e.store, "uc."+normalizeUserCode(uc), []byte("garbage"))
	if st, page := e.approveDevice(newBrowser(t), uc, "alice", alicePW, "approve"); st == 200 && strings.Contains(page, "signed in as") {
		t.Errorf("approved through a garbage user-code record: %d", st)
	}
}

func TestHostileAuthCodeRecord(t *testing.T) {
	e := startEnv(t, nil)
	verifier := strings.Repeat("v", 43)
	for _, g := range garbage {
		code := "code-" + strconv.Itoa(len(g))
		overwrite(t, e.store, "ac."+hashHex(code), g)
		st, body := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
			"redirect_uri": {redirectURI}, "client_id": {"dashboard"}}, "", "")
		wantOAuthError(t, st, body, 400, "invalid_grant")
	}
}

// Garbage over the key ring and revocations: the server keeps verifying
// with what it synced last, and keeps revoked tokens revoked.
func TestHostileKeyRingAndRevocations(t *testing.T) {
	e := startEnv(t, nil)
	tok, err := e.config("backend", backendSec).PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := e.srv.VerifyAccessToken(tok.AccessToken)
	if err := e.srv.revoke(context.Background(), c.ID, c.Expiry); err != nil {
		t.Fatal(err)
	}
	ring, _ := e.store.Get(context.Background(), ringKey)
	for i, g := range append(garbage, []byte(`{"keys":[{"kid":"x","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}]}`)) {
		overwrite(t, e.store, ringKey, g)
		for j := 0; j < 40; j++ {
			overwrite(t, e.store, "rv.junk"+strconv.Itoa(j), g)
		}
		e.srv.syncOnce(true)
		if _, err := e.srv.VerifyAccessToken(tok.AccessToken); err != ErrTokenRevoked {
			t.Errorf("garbage %d: the revoked token verifies as %v", i, err)
		}
		t2, err := e.config("backend", backendSec).PasswordCredentialsToken(e.ctx(), "alice", alicePW)
		if err != nil {
			t.Fatalf("garbage %d: issuing: %v", i, err)
		}
		if _, err := e.srv.VerifyAccessToken(t2.AccessToken); err != nil {
			t.Fatalf("garbage %d: a new token: %v", i, err)
		}
	}
	if !strings.Contains(e.logs.String(), "cannot sync") {
		t.Error("a key ring that does not decode was not logged")
	}
	// Put back, the server syncs again.
	overwrite(t, e.store, ringKey, ring.Value)
	e.srv.syncOnce(false)
	if _, err := e.srv.VerifyAccessToken(tok.AccessToken); err != ErrTokenRevoked {
		t.Errorf("after the ring is restored: %v", err)
	}
}
