package oauth

import (
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"sync"
	"testing"
	"time"
)

// TestClientSecretBesidePublicRequestsInProgress: a confidential client's
// secret, checked (not yet cached), takes one of its address's places
// (limiter.begin), which since 76168da its public clients' requests in
// progress hold too: a backend sharing an address with a public client's
// browsers or apps (one NAT) was refused 429 invalid_client at once while
// ten of their refreshes were in progress, none having failed. It now
// waits for such a place, up to a second, as a sign-in does.
func TestClientSecretBesidePublicRequestsInProgress(t *testing.T) {
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
	opened := time.AfterFunc(200*time.Millisecond, func() { close(gs.gate) })
	defer opened.Stop()
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
	wg.Wait()
	if st != 200 {
		t.Fatalf("a confidential client's first token from an address with ten public-client requests in progress (none failed): %d %v, want 200", st, body)
	}
}
