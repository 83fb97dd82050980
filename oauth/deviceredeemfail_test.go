package oauth

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// failingFamilies is a store whose creations of refresh-token families
// fail while armed, as a mesh's store that does not answer for a moment.
type failingFamilies struct {
	Store
	creates atomic.Bool
}

func (s *failingFamilies) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	if s.creates.Load() && strings.HasPrefix(key, "rt.") {
		return 0, errUnavailable
	}
	return s.Store.Create(ctx, key, value, ttl)
}

// A device's poll of an approved code that the store could not complete
// (its login's record not written) was answered 503
// temporarily_unavailable, "try again", after the code's record had been
// deleted: the retry got invalid_grant "unknown device code", which RFC
// 8628 makes final, and was counted as a guess against the device's
// address; the person's approval was lost and the device had to start
// over. The code is now redeemed (its record deleted) only once its
// tokens are made, so that the retry gets them.
func TestDeviceRedemptionStoreFailureKeepsApproval(t *testing.T) {
	st := &failingFamilies{}
	e := startEnv(t, func(o *Options) {
		st.Store = newMemStore(o.now)
		o.Store = st
	})
	status, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if status != 200 {
		t.Fatalf("device authorization: %d %v", status, da)
	}
	dc := da["device_code"].(string)
	if s, page := e.approveDevice(newBrowser(t), da["user_code"].(string), "alice", alicePW, "approve"); s != 200 {
		t.Fatalf("approval: %d %s", s, page)
	}
	st.creates.Store(true)
	s, body := e.devicePoll(dc)
	st.creates.Store(false)
	wantOAuthError(t, s, body, 503, "temporarily_unavailable")
	e.clock.Advance(6 * time.Second) // the interval
	s, body = e.devicePoll(dc)
	if s != 200 || body["access_token"] == nil || body["refresh_token"] == nil {
		t.Fatalf("the retry after a 503: %d %v, want 200 with the tokens (the approval kept)", s, body)
	}
	if strings.Contains(e.logs.String(), "authentication failed") {
		t.Error("the retry was counted as a failed attempt")
	}
	if _, err := e.srv.VerifyAccessToken(body["access_token"].(string)); err != nil {
		t.Fatalf("the access token: %v", err)
	}
	// The failed attempt's login left no family behind.
	if fams, _ := e.store.List(context.Background(), "rt."); len(fams) != 1 {
		t.Errorf("%d refresh-token families stored, want 1", len(fams))
	}
	// Redeemed once.
	s, body = e.devicePoll(dc)
	wantOAuthError(t, s, body, 400, "invalid_grant")
}
