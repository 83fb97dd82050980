package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// One signed-in user gets at most maxCodesPerUser authorization codes
// within a code's lifetime and the clock skew allowed (90 s), on all the
// nodes sharing the store together. Nothing bounded them but the store's
// fill (codeRoom, three quarters of the mesh's bucket): one account's
// sign-ins in a loop, ~43,000 codes kept 11 minutes, took the bucket to
// three quarters, and every user's sign-in on every node was then
// refused 503 for as long as the codes lived. Here alice signs in on two
// nodes sharing one store, in turn: the first ten get a code, the next
// is sent back to the client with temporarily_unavailable (RFC 6749
// §4.1.2.1; state and iss kept), bob still gets his, and alice gets one
// again once her codes' time is over. Redeeming a code does not give its
// place back (its record is kept 11 minutes for replays).
func TestAuthorizationCodesBoundedPerUserAcrossNodes(t *testing.T) {
	const perUser = 10 // maxCodesPerUser
	a := startEnv(t, nil)
	b := startEnv(t, func(o *Options) { o.Store = a.store; o.Issuer = a.url; o.now = a.clock.Now })
	nodes := []*testEnv{a, b}
	br := newBrowser(t)
	signIn := func(node *testEnv, user, pw string) url.Values {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		authURL := strings.Replace(node.config("dashboard", "", "read").AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)), a.url, node.url, 1)
		st, q, page := node.authorize(br, authURL, user, pw, "approve")
		if st != http.StatusSeeOther {
			t.Fatalf("%s's sign-in: %d\n%s", user, st, page)
		}
		if q.Get("code") != "" {
			q.Set("verifier", verifier)
		}
		return q
	}
	var first url.Values
	for i := range perUser {
		q := signIn(nodes[i%2], "alice", alicePW)
		if q.Get("code") == "" {
			t.Fatalf("alice's sign-in %d of %d: %v, want a code", i+1, perUser, q)
		}
		if i == 0 {
			first = q
		}
	}
	// The first code redeemed: its place is not given back.
	st, body := a.token(url.Values{"grant_type": {"authorization_code"}, "code": {first.Get("code")}, "code_verifier": {first.Get("verifier")},
		"redirect_uri": {redirectURI}, "client_id": {"dashboard"}}, "", "")
	if st != 200 {
		t.Fatalf("redeeming alice's first code: %d %v", st, body)
	}
	for _, node := range nodes {
		q := signIn(node, "alice", alicePW)
		if q.Get("code") != "" || q.Get("error") != "temporarily_unavailable" || q.Get("state") != "st4te" || q.Get("iss") != a.url {
			t.Fatalf("alice's sign-in past %d codes: %v, want the error temporarily_unavailable with state and iss", perUser, q)
		}
	}
	if q := signIn(b, "bob", bobPW); q.Get("code") == "" {
		t.Fatalf("bob's sign-in while alice is at her bound: %v, want a code", q)
	}
	a.clock.Advance(authCodeLifetime + 30*time.Second) // the codes' minute and the skew allowed
	if q := signIn(a, "alice", alicePW); q.Get("code") == "" {
		t.Fatalf("alice's sign-in once her codes expired: %v, want a code", q)
	}
}
