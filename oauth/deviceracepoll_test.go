package oauth

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// racingRedeems is a store whose writes of device codes' records (an
// update or a deletion) wait, while armed, until n of them have come (or
// 5 s): the polls of one approved code that reached its redemption
// together, as on a mesh store whose writes take a round trip.
type racingRedeems struct {
	Store
	mu      sync.Mutex
	n       int
	arrived chan struct{}
}

func (s *racingRedeems) arm(n int) {
	s.mu.Lock()
	s.n, s.arrived = n, make(chan struct{})
	s.mu.Unlock()
}

func (s *racingRedeems) wait(key string) {
	s.mu.Lock()
	ch := s.arrived
	if ch != nil && strings.HasPrefix(key, "dc.") {
		if s.n--; s.n == 0 {
			close(ch)
			s.arrived = nil
		}
	} else {
		ch = nil
	}
	s.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
		}
	}
}

func (s *racingRedeems) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	s.wait(key)
	return s.Store.Update(ctx, key, value, rev, ttl)
}

func (s *racingRedeems) Delete(ctx context.Context, key string, rev uint64) error {
	s.wait(key)
	return s.Store.Delete(ctx, key, rev)
}

// Two polls of one approved device code that race (a device's retry
// overlapping its poll, or anyone holding the code sending several at
// once) redeem it once, and end no more of the user's other logins than
// one redemption does. Since the tokens are made before the code's record
// is deleted (1b4c3df), each racing poll made its login, indexed among the
// user's, which at max_refresh_tokens ended her oldest live login; the
// losers then deleted theirs: n racing polls logged n of her other devices
// out, where one redemption ends one.
func TestDeviceRacingPollsEndOneLogin(t *testing.T) {
	st := &racingRedeems{}
	e := startEnv(t, func(o *Options) {
		st.Store = newMemStore(o.now)
		o.Store = st
		o.Realms[0].MaxRefreshTokens = 2
	})
	approved := func() string {
		t.Helper()
		status, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
		if status != 200 {
			t.Fatalf("device authorization: %d %v", status, da)
		}
		if s, page := e.approveDevice(newBrowser(t), da["user_code"].(string), "alice", alicePW, "approve"); s != 200 {
			t.Fatalf("approval: %d %s", s, page)
		}
		return da["device_code"].(string)
	}
	login := func() string {
		t.Helper()
		s, body := e.devicePoll(approved())
		if s != 200 || body["refresh_token"] == nil {
			t.Fatalf("device login: %d %v", s, body)
		}
		return body["refresh_token"].(string)
	}
	login()           // her first device: ended by the third login (the bound is 2)
	second := login() // her second device: kept
	e.clock.Advance(time.Second)
	dc := approved()
	st.arm(2)
	type answer struct {
		status int
		body   map[string]any
	}
	var answers [2]answer
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i].status, answers[i].body = e.devicePoll(dc)
		}()
	}
	wg.Wait()
	got := 0
	for _, a := range answers {
		if a.status == 200 {
			got++
		}
	}
	if got != 1 {
		t.Fatalf("two racing polls of one approved code: %v, want one answered with the tokens", answers)
	}
	s, body := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second}, "client_id": {"device"}}, "", "")
	if s != 200 {
		t.Fatalf("her second device's refresh after a third device's login (two racing polls): %d %v, want 200 (one redemption ends one login: the oldest)", s, body)
	}
}

// A poll's claim on an approved code that its node never completed nor
// released (the node stopped in between) holds off the others for
// redeemHold only: the device's poll after it gets the tokens.
func TestDeviceClaimLeftIsTakenOver(t *testing.T) {
	e := startEnv(t, nil)
	status, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if status != 200 {
		t.Fatalf("device authorization: %d %v", status, da)
	}
	dc := da["device_code"].(string)
	if s, page := e.approveDevice(newBrowser(t), da["user_code"].(string), "alice", alicePW, "approve"); s != 200 {
		t.Fatalf("approval: %d %s", s, page)
	}
	ctx, key := context.Background(), "dc."+hashHex(dc)
	en, err := e.store.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var d deviceRec
	if err := json.Unmarshal(en.Value, &d); err != nil || d.Status != "approved" {
		t.Fatalf("the code's record: %v %+v", err, d)
	}
	d.Redeeming = e.clock.Now().Unix() // a poll's claim, left
	b, _ := json.Marshal(d)
	if _, err := e.store.Update(ctx, key, b, en.Revision, time.Hour); err != nil {
		t.Fatal(err)
	}
	s, body := e.devicePoll(dc)
	wantOAuthError(t, s, body, 400, "authorization_pending")
	e.clock.Advance(redeemHold)
	if s, body = e.devicePoll(dc); s != 200 || body["access_token"] == nil {
		t.Fatalf("a poll past the claim's hold: %d %v, want the tokens", s, body)
	}
}
