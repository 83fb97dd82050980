package main

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A WAMP ticket login with a genuine access token that has expired (or
// been revoked) is refused authentication_denied, as before, but is no
// guess: counted as a failed authentication, a device reconnecting with
// its expired token ten times in a minute (limits.auth_failures'
// block_after) locked its authid out at its address (logins naming no
// authid share one count: every such device behind it), and the fresh
// token it got meanwhile was refused too. The gateway no longer counts
// such tokens (gateway.ErrBearerStale); the WAMP port did.
func TestWAMPExpiredTokenNotCountedAsFailure(t *testing.T) {
	t.Parallel()
	key := oauthKeyFile(t)
	r := startRouter(t, "-config", writeFile(t, "stalewamp.yaml", oauthYAML(t, oaIssuer, key, "", "      access_token_lifetime: 1s\n")))
	base := "http://" + r.gw
	old := ccAt(t, base, "backend", oaBackendPW)
	time.Sleep(2100 * time.Millisecond) // past its exp (rounded up to the second: up to 2 s)
	for i := range 12 {                 // past block_after (10)
		s, err := ticketLoginAt(r.addr, old)
		if err == nil {
			s.Close()
			t.Fatalf("login %d with the expired token welcomed", i+1)
		}
		if wampURI(err) != proto.URIAuthenticationDenied || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("login %d with the expired token: %v, want %s (expired)", i+1, err, proto.URIAuthenticationDenied)
		}
	}
	fresh := ccAt(t, base, "backend", oaBackendPW)
	s, err := ticketLoginAt(r.addr, fresh)
	if err != nil {
		t.Fatalf("a fresh token after the expired one's logins: %v, want a session", err)
	}
	s.Close()
	// A forgery (its signature altered) is still counted: locked out
	// by the eleventh.
	for i := range 12 {
		_, err := ticketLoginAt(r.addr, tampered(fresh))
		if strings.Contains(wampURI(err)+err.Error(), "too many failed") {
			return
		}
		if wampURI(err) != proto.URIAuthenticationFailed {
			t.Fatalf("forged login %d: %v, want %s", i+1, err, proto.URIAuthenticationFailed)
		}
	}
	t.Fatal("12 forged tokens were not counted: no lockout")
}
