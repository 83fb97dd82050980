package oauth

import (
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"sync"
	"testing"
	"time"

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
	gs := &gatedReads{gate: make(chan struct{})}
	e := startEnv(t, func(o *Options) {
		gs.Store = newMemStore(o.now)
		o.Store = gs
	})
	e.fresh()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, refreshTokenLen)
			rand.Read(b)
			e.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {"device"}, "refresh_token": {base64.RawURLEncoding.EncodeToString(b)}}, "", "")
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for gs.reads.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// The store answers them 200 ms from now (a slow round trip).
	opened := time.AfterFunc(200*time.Millisecond, func() { close(gs.gate) })
	defer opened.Stop()
	b := newBrowser(t)
	b.c.Transport = e.hc.Transport // the same address
	verifier := oauth2.GenerateVerifier()
	st, q, page := e.authorize(b, e.config("dashboard", "", "read").AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "bob", bobPW, "approve")
	wg.Wait()
	if q.Get("code") == "" {
		t.Fatalf("a sign-in from an address with ten public-client requests in progress (none failed): %d %q, want a code", st, page)
	}
}
