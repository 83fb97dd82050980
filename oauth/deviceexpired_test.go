package oauth

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestExpiredDeviceCodeNotAGuess: a device code's record lives gcGrace
// (10 min) past its expiry, so that a late poll hears expired_token;
// after that the code read as unknown, invalid_grant, and counted as a
// failed attempt of its address like a guessed code: a device that polls
// again with its old code (resumed from suspend, restarted with its state
// on disk) locked its address (a NAT's every device) out of the token
// endpoint after ten polls. The code now carries its expiry under a MAC of
// the server's key: one of its own that has expired is answered
// expired_token without a store read and counts nothing, while a guessed
// or altered code is counted as before.
func TestExpiredDeviceCodeNotAGuess(t *testing.T) {
	rc := &readCounter{}
	e := startEnv(t, func(o *Options) {
		rc.Store = newMemStore(o.now) // the test's clock
		o.Store = rc
	})
	st, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if st != 200 {
		t.Fatalf("device authorization: %d %v", st, da)
	}
	dc := da["device_code"].(string)
	e.clock.Advance(DefaultDeviceCodeLifetime + gcGrace + time.Minute)
	before := rc.reads.Load()
	for i := 0; i < 15; i++ {
		st, body := e.devicePoll(dc)
		if st != 400 || body["error"] != "expired_token" {
			t.Errorf("poll %d of a code expired 11 min ago: %d %v, want 400 expired_token", i, st, body)
		}
	}
	if n := strings.Count(e.logs.String(), "authentication failed"); n != 0 {
		t.Errorf("%d failed attempts counted for polls of an expired code", n)
	}
	if n := rc.reads.Load() - before; n != 0 {
		t.Errorf("%d store reads for 15 polls of an expired code, want 0", n)
	}
	// A code altered (its expiry, its MAC) or guessed is still a guess.
	altered := dc[:len(dc)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(dc, "AA")]
	st, body := e.devicePoll(altered)
	wantOAuthError(t, st, body, 400, "invalid_grant")
	if n := strings.Count(e.logs.String(), "authentication failed"); n != 1 {
		t.Errorf("an altered device code: %d failed attempts counted, want 1", n)
	}
}
