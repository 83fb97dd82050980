package oauth

import (
	"net/url"
	"testing"
	"time"
)

// TestExpiredRefreshTokensDoNotLockOutAddress: a public client's refresh
// token whose login has ended (expired, its record gone with the store's
// TTL, or signed out) reads as unknown, as a guess does; counted as a
// failed attempt of its address (7fdb83f, 93a5137), twelve users of an
// SPA coming back after the refresh lifetime from one NAT locked that
// address out: every login there refused 429 for the lockout. Such
// tokens are answered invalid_grant (200 at /oauth/revoke) as before and
// not counted; a guess is 48 random bytes, hopeless, and costs one store
// read.
func TestExpiredRefreshTokensDoNotLockOutAddress(t *testing.T) {
	e := startEnv(t, nil)
	var rts []string
	for i := 0; i < 12; i++ {
		e.fresh()
		e.clock.Advance(3 * time.Minute) // the per-user sign-in bound
		st, body := e.token(e.codeRedemption(newBrowser(t)), "", "")
		if st != 200 {
			t.Fatalf("login %d: %d %v", i, st, body)
		}
		rts = append(rts, body["refresh_token"].(string))
	}
	e.clock.Advance(DefaultRefreshTokenLifetime + time.Hour)
	e.fresh() // one address (a NAT) for all the users coming back
	codes := map[int]int{}
	for _, rt := range rts {
		st, _ := e.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {"dashboard"}, "refresh_token": {rt}}, "", "")
		codes[st]++
		st, _ = e.post("/oauth/revoke", url.Values{"client_id": {"dashboard"}, "token": {rt}}, "", "")
		codes[st]++
	}
	e.clock.Advance(3 * time.Minute)
	form := e.codeRedemption(newBrowser(t))
	st, body := e.token(form, "", "")
	if codes[400] != 12 || codes[200] != 12 || st != 200 {
		t.Fatalf("12 expired refresh tokens of a public client from one address, each refreshed and revoked: statuses %v (want 12 × 400, 12 × 200); then a fresh login's code exchange: %d %v, want 200", codes, st, body["error"])
	}
}
