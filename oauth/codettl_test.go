package oauth

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

// An authorization code nobody redeems leaves the store once its minute
// and the clock skew allowed between nodes (30 s) are over; it was kept
// for the collection grace too, 11 minutes in all, seven times what a
// flood of unused codes now holds of a shared store. A redeemed code is
// still kept for the grace, for a replay to find it used.
func TestUnusedAuthorizationCodeLeavesTheStoreAfterItsLifetime(t *testing.T) {
	e := startEnv(t, nil)
	br := newBrowser(t)
	codes := make([]url.Values, 2)
	for i := range codes {
		codes[i] = e.codeRedemption(br)
	}
	if st, body := e.token(codes[1], "", ""); st != 200 {
		t.Fatalf("redeeming the second code: %d %v", st, body)
	}
	e.clock.Advance(authCodeLifetime + 30*time.Second + time.Second)
	if _, err := e.store.Get(e.ctx(), "ac."+hashHex(codes[0].Get("code"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unused code's record 91 s after it was issued: %v, want it gone", err)
	}
	if _, err := e.store.Get(e.ctx(), "ac."+hashHex(codes[1].Get("code"))); err != nil {
		t.Fatalf("a redeemed code's record 91 s after it was issued: %v, want it kept for replays", err)
	}
	st, body := e.token(codes[1], "", "")
	wantOAuthError(t, st, body, 400, "invalid_grant")
}
