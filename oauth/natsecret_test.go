package oauth

import (
	"net/url"
	"testing"
)

// TestClientSecretBesidePublicRequestsInProgress: a confidential client's
// secret, checked (not yet cached), takes one of its address's places
// (limiter.begin), which since 76168da its public clients' requests in
// progress hold too: a backend sharing an address with a public client's
// browsers or apps (one NAT) was refused 429 invalid_client at once while
// ten of their refreshes were in progress, none having failed. It now
// waits for such a place, up to a second, as a sign-in does.
func TestClientSecretBesidePublicRequestsInProgress(t *testing.T) {
	e, gs := startGatedEnv(t)
	e.fresh()
	wait := holdPublicPlaces(t, e, gs)
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
	wait()
	if st != 200 {
		t.Fatalf("a confidential client's first token from an address with ten public-client requests in progress (none failed): %d %v, want 200", st, body)
	}
}
