package oauth

import (
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"sync"
	"testing"
	"time"
)

// startGatedEnv starts a test server whose store holds its reads at gs's
// gate until the test opens it.
func startGatedEnv(t *testing.T) (*testEnv, *gatedReads) {
	t.Helper()
	gs := &gatedReads{gate: make(chan struct{})}
	e := startEnv(t, func(o *Options) {
		gs.Store = newMemStore(o.now)
		o.Store = gs
	})
	return e, gs
}

// holdPublicPlaces fills e's address's ten places with public-client
// refreshes whose store reads wait at gs's gate (an office NAT's browsers
// refreshing at once, none failed), and has the store answer them 200 ms
// later (a slow round trip). The returned func waits for the refreshes.
func holdPublicPlaces(t *testing.T, e *testEnv, gs *gatedReads) (wait func()) {
	t.Helper()
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
	t.Cleanup(func() { opened.Stop() })
	return wg.Wait
}
