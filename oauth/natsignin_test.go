package oauth

import (
	"testing"

	"golang.org/x/oauth2"
)

// TestSignInBesidePublicRequestsInProgress: since 76168da a public
// client's token request holds one of its address's places while it runs,
// and a password check (the sign-in page's, the password grant's) takes
// one too (checkUser): a user signing in from an address whose other
// browsers had ten refreshes in progress (an office's NAT) was refused
// 429 at once, "too many failed authentications", none having failed.
// checkUser now waits for a place held by requests in progress, up to a
// second, as a public client's request does; failures still refuse it at
// once.
func TestSignInBesidePublicRequestsInProgress(t *testing.T) {
	e, gs := startGatedEnv(t)
	e.fresh()
	wait := holdPublicPlaces(t, e, gs)
	b := newBrowser(t)
	b.c.Transport = e.hc.Transport // the same address
	verifier := oauth2.GenerateVerifier()
	st, q, page := e.authorize(b, e.config("dashboard", "", "read").AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "bob", bobPW, "approve")
	wait()
	if q.Get("code") == "" {
		t.Fatalf("a sign-in from an address with ten public-client requests in progress (none failed): %d %q, want a code", st, page)
	}
}
