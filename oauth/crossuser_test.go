package oauth

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A public client's tokens without a login (the password grant of a
// client without refresh tokens) are its users', and anyone may act as a
// public client. Past maxRevokedPerClient of them revoked one by one
// within a token's lifetime, the client's cut-off revoked every token
// without a login the client had issued so far, whoever it was issued
// to: one user revoking 33 of her own tokens revoked every other user's
// (and ended their WAMP sessions), and each later revocation of hers, at
// most once a second, did it again. The count and the cut-off are now per
// (client, subject): a client_credentials client's own tokens (subject
// the client) are cut together as before; a user's go only with her own.
func TestClientCutOffIsPerSubject(t *testing.T) {
	store := newMemStore(time.Now)
	var la, lb revokeLog
	e := startEnv(t, func(o *Options) { o.Store = store; o.OnRevoke = la.add })
	b := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = e.url; o.now = e.clock.Now; o.OnRevoke = lb.add })
	bob := e.cliToken("bob", bobPW)
	bobClaims, err := e.srv.VerifyAccessToken(bob)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for i := range maxRevokedPerClient + 1 {
		last = e.cliToken("alice", alicePW)
		if st, body := e.post("/oauth/revoke", url.Values{"token": {last}, "client_id": {"cli"}}, "", ""); st != 200 {
			t.Fatalf("alice's sign-out %d: %d %v", i, st, body)
		}
	}
	if _, err := e.srv.VerifyAccessToken(last); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("alice's last revoked token: %v, want ErrTokenRevoked", err)
	}
	if _, err := e.srv.VerifyAccessToken(bob); err != nil {
		t.Errorf("bob's token after alice revoked %d of her own: %v, want valid", maxRevokedPerClient+1, err)
	}
	if err := e.srv.StillValid(bobClaims, "viewer"); err != nil {
		t.Errorf("bob's session after alice revoked %d of her own tokens: %v, want valid", maxRevokedPerClient+1, err)
	}
	// Node B, at its sync: the same.
	b.srv.syncOnce(false)
	if _, err := b.srv.VerifyAccessToken(last); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("node B, alice's last revoked token: %v, want ErrTokenRevoked", err)
	}
	if _, err := b.srv.VerifyAccessToken(bob); err != nil {
		t.Errorf("node B, bob's token: %v, want valid", err)
	}
	id := subjectRevocationID("cli", "alice")
	if la.count(id) == 0 || lb.count(id) != 1 || la.count(subjectRevocationID("cli", "bob"))+lb.count(ClientRevocationID("cli")) != 0 {
		t.Errorf("OnRevoke told of alice's cut-off %d times on A and %d on B, want at least once and once, and of nobody else's", la.count(id), lb.count(id))
	}
	if long := "rv." + cutStoreID(strings.Repeat("~", 128), strings.Repeat("s", 4096)); !ValidKey(long) {
		t.Errorf("the cut-off's store key of the longest client ID is not a valid key (%d bytes)", len(long))
	}
	// alice's own earlier tokens without a login are cut together.
	early := e.cliToken("alice", alicePW)
	if st, _ := e.post("/oauth/revoke", url.Values{"token": {e.cliToken("alice", alicePW)}, "client_id": {"cli"}}, "", ""); st != 200 {
		t.Fatal("revoke")
	}
	if _, err := e.srv.VerifyAccessToken(early); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("alice's earlier token after her cut-off moved on: %v, want ErrTokenRevoked", err)
	}
}
