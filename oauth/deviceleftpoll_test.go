package oauth

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ctxBoundStore is a store that, as the mesh's (edge.KV bounds every
// operation by its caller's context), fails a write whose context has
// ended; while slow is set, its creations of refresh-token families
// (slowDelete false) or its deletions of device codes' records (true)
// take until their context ends (a store slower than the device's HTTP
// timeout). Each update of a device code's record is told on updates.
type ctxBoundStore struct {
	Store
	slow       atomic.Bool
	slowDelete bool
	updates    chan struct{}
}

// stall waits, while slow, until ctx ends (or 5 s).
func (s *ctxBoundStore) stall(ctx context.Context) {
	if s.slow.Load() {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

func (s *ctxBoundStore) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	if !s.slowDelete && strings.HasPrefix(key, "rt.") {
		s.stall(ctx)
	}
	if err := ctx.Err(); err != nil {
		return 0, errUnavailable
	}
	return s.Store.Create(ctx, key, value, ttl)
}

func (s *ctxBoundStore) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	if strings.HasPrefix(key, "dc.") {
		defer func() { s.updates <- struct{}{} }()
	}
	if err := ctx.Err(); err != nil {
		return 0, errUnavailable
	}
	return s.Store.Update(ctx, key, value, rev, ttl)
}

func (s *ctxBoundStore) Delete(ctx context.Context, key string, rev uint64) error {
	if s.slowDelete && strings.HasPrefix(key, "dc.") {
		s.stall(ctx)
	}
	if err := ctx.Err(); err != nil {
		return errUnavailable
	}
	return s.Store.Delete(ctx, key, rev)
}

// TestDeviceLeftPollReleasesItsClaim: a device that gives up its poll of
// an approved code while the store makes its login or redeems the code
// (its HTTP timeout, a lost uplink) polls again and gets its tokens, and
// the login made for the poll it gave up goes. Since 16ce16e a poll
// claims the code first and releases the claim when it cannot complete,
// but it released it with the request's context, which had ended with the
// device's connection: on a mesh's store the release failed, and the
// device's next polls were answered authorization_pending for redeemHold
// (a minute), where before the claim the next poll redeemed the code at
// once. The login made for tokens never sent was deleted with that
// context too: left, it counted among the user's logins at
// max_refresh_tokens.
func TestDeviceLeftPollReleasesItsClaim(t *testing.T) {
	for _, slowDelete := range []bool{false, true} {
		name := map[bool]string{false: "store slow making the login", true: "store slow redeeming the code"}[slowDelete]
		t.Run(name, func(t *testing.T) { deviceLeftPoll(t, slowDelete) })
	}
}

func deviceLeftPoll(t *testing.T, slowDelete bool) {
	st := &ctxBoundStore{updates: make(chan struct{}, 16), slowDelete: slowDelete}
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
	for len(st.updates) > 0 {
		<-st.updates
	}
	st.slow.Store(true)
	hc := *e.hc
	hc.Timeout = 300 * time.Millisecond // the device gives up
	form := url.Values{"grant_type": {deviceGrantType}, "device_code": {dc}, "client_id": {"device"}}
	req, _ := http.NewRequest("POST", e.url+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the poll the device gave up was answered %d", resp.StatusCode)
	}
	for i := range 2 { // the claim, then its release
		select {
		case <-st.updates:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d updates of the code's record after the poll the device gave up, want 2 (claimed, released)", i)
		}
	}
	st.slow.Store(false)
	e.clock.Advance(6 * time.Second) // the interval
	s, body := e.devicePoll(dc)
	if s != 200 || body["access_token"] == nil {
		t.Fatalf("the device's next poll: %d %v, want the tokens (the claim of the poll it gave up released)", s, body)
	}
	if fams, _ := e.store.List(context.Background(), "rt."); len(fams) != 1 {
		t.Errorf("%d refresh-token families stored, want 1 (the login of the poll the device gave up deleted)", len(fams))
	}
}
