package oauth

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"
)

// A device's poll of an approved code whose login the bound on a user's
// ended logins refuses for now (74df69b) is answered authorization_pending,
// so that the device polls on and gets its tokens once the bound has room
// again: it was 429 temporarily_unavailable, which RFC 8628 devices (Go's
// x/oauth2 among them: any error but authorization_pending and slow_down)
// take as final, so the device stopped polling and the person's approval
// was lost to it.
func TestDevicePollPastLoginBoundIsPending(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.Realms[0].MaxRefreshTokens = 1 })
	deviceLogin := func() (string, int, map[string]any) {
		t.Helper()
		st, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
		if st != 200 {
			t.Fatalf("device authorization: %d %v", st, da)
		}
		if s, page := e.approveDevice(newBrowser(t), da["user_code"].(string), "alice", alicePW, "approve"); s != 200 {
			t.Fatalf("approval: %d %s", s, page)
		}
		dc := da["device_code"].(string)
		st, body := e.devicePoll(dc)
		return dc, st, body
	}
	if _, st, body := deviceLogin(); st != 200 {
		t.Fatalf("alice's first device login: %d %v", st, body)
	}
	// Her logins with the device client ended as many others lately as
	// the bound allows (as another node's logins may have).
	key := indexKey(testRealms(t)[0].Name, "device", "alice")
	en, err := e.store.Get(e.ctx(), key)
	if err != nil {
		t.Fatal(err)
	}
	var idx famIndex
	if err := json.Unmarshal(en.Value, &idx); err != nil {
		t.Fatal(err)
	}
	for range maxEndedLogins {
		idx.Ends = append(idx.Ends, e.clock.Now().Add(5*time.Minute).Unix())
	}
	b, _ := json.Marshal(idx)
	if _, err := e.store.Update(e.ctx(), key, b, en.Revision, time.Hour); err != nil {
		t.Fatal(err)
	}
	dc, st, body := deviceLogin()
	wantOAuthError(t, st, body, 400, "authorization_pending")
	e.clock.Advance(6 * time.Minute) // the entries expire; the code lives 10 min
	if st, body := e.devicePoll(dc); st != 200 || body["refresh_token"] == nil {
		t.Fatalf("the device's poll once the bound has room: %d %v, want 200 with the tokens", st, body)
	}
}
