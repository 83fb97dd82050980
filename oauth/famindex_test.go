package oauth

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// A login's refresh-token family lives on as long as it is used (each
// refresh gives it a fresh lifetime), but the index of its user's
// families (ru.) was written, with the refresh-token lifetime as its
// expiry and its TTL, only when a login started. Once a login had been
// refreshed for longer than that lifetime since the user's last new
// login, the index was gone while the family lived: a new login no longer
// counted it against max_refresh_tokens, and revoking the user's access
// tokens past the per-user bound (which revokes the token's login by
// finding its family through the index) left the refresh token minting
// new access tokens. The index now lives as long as the families it
// lists.
func TestRefreshIndexLivesWithItsLogins(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		o.Realms[0].RefreshTokenLifetime = time.Hour
		o.Realms[0].MaxRefreshTokens = 1
	})
	cfg := e.config("backend", backendSec)
	// keepUsing refreshes tok every 40 minutes for two hours: the login
	// is used all along; its index's first expiry (1 h) passes.
	keepUsing := func(tok *oauth2.Token) *oauth2.Token {
		t.Helper()
		for range 3 {
			e.clock.Advance(40 * time.Minute)
			next, err := refreshVia(e, cfg, tok.RefreshToken)
			if err != nil {
				t.Fatalf("refreshing a login in use: %v", err)
			}
			tok = next
		}
		return tok
	}

	// The bound: bob's second login ends his first (max_refresh_tokens 1).
	bob1, err := cfg.PasswordCredentialsToken(e.ctx(), "bob", bobPW)
	if err != nil {
		t.Fatal(err)
	}
	bob1 = keepUsing(bob1)
	if _, err := cfg.PasswordCredentialsToken(e.ctx(), "bob", bobPW); err != nil {
		t.Fatal(err)
	}
	if _, err := refreshVia(e, cfg, bob1.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Errorf("bob's first login, used for 2 h, after a second login with max_refresh_tokens 1: refresh %v, want invalid_grant (ended by the bound)", err)
	}

	// The per-user bound of access tokens revoked one by one: past it,
	// the token's login is revoked, and its refresh token must stop.
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ = revokeEachRefreshed(t, e, cfg, keepUsing(tok), maxRevokedPerUser+1)
	if !strings.Contains(e.logs.String(), "login is revoked") {
		t.Fatal("the per-user bound was not reached")
	}
	if _, err := refreshVia(e, cfg, tok.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("the revoked login's refresh token: %v, want invalid_grant", err)
	}
}
