package oauth

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

// A genuine access token whose iat is ahead of the clock by more than the
// skew allowed (the system clock stepped back after it was issued, or a
// node whose clock leads issued it) is refused at a login until the clock
// reaches it. Its revocation at /oauth/revoke was answered 200 and stored
// nothing (verify refused the token as not one of ours), so once the
// clock had caught up the token signed out was taken again, at every
// login, until it expired. It is revoked now, as any genuine token is.
func TestRevokeTokenIssuedAheadOfTheClock(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client string
		secret string
	}{
		{"of a login", "backend", backendSec}, // password grant with a refresh token: a gid
		{"without a login", "cli", ""},        // public client without refresh tokens: no gid
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, nil)
			form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}}
			if tc.secret == "" {
				form.Set("client_id", tc.client)
			}
			st, body := e.token(form, map[bool]string{true: tc.client}[tc.secret != ""], tc.secret)
			if st != 200 {
				t.Fatalf("password grant: %d %v", st, body)
			}
			at := body["access_token"].(string)
			e.clock.Advance(-2 * time.Minute) // the system clock steps back
			if _, err := e.srv.VerifyAccessToken(at); err == nil {
				t.Fatal("a token issued 2 minutes ahead of the clock was taken")
			}
			rv := url.Values{"token": {at}}
			id, sec := tc.client, tc.secret
			if sec == "" {
				rv.Set("client_id", tc.client)
				id = ""
			}
			if st, body := e.post("/oauth/revoke", rv, id, sec); st != 200 {
				t.Fatalf("revoke: %d %v", st, body)
			}
			e.clock.Advance(3 * time.Minute) // the clock catches up; the token lives 5 minutes
			if _, err := e.srv.VerifyAccessToken(at); !errors.Is(err, ErrTokenRevoked) {
				t.Fatalf("the revoked token once the clock caught up: %v, want %v", err, ErrTokenRevoked)
			}
		})
	}
}
