package oauth

import (
	"net/url"
	"strings"
	"testing"
)

// TestUserCodeBesidePublicRequestsInProgress: the device page's user-code
// check takes one of its address's places (limiter.begin), which since
// 76168da its public clients' requests in progress hold too: a person
// entering a device's code from an address whose other browsers had ten
// refreshes in progress (an office's NAT) was answered 429 "Too many
// failed attempts from your network", none having failed. It now waits
// for such a place, up to a second, as a sign-in does.
func TestUserCodeBesidePublicRequestsInProgress(t *testing.T) {
	e, gs := startGatedEnv(t)
	st, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if st != 200 {
		t.Fatalf("device authorization: %d %v", st, da)
	}
	e.fresh()
	wait := holdPublicPlaces(t, e, gs)
	b := newBrowser(t)
	b.c.Transport = e.hc.Transport // the same address
	st, page := e.approveDevice(b, da["user_code"].(string), "alice", alicePW, "approve")
	wait()
	if st != 200 || !strings.Contains(page, "Device connected") {
		i := max(strings.Index(page, `id="error"`), 0)
		t.Fatalf("a device's code entered from an address with ten public-client requests in progress (none failed): %d %q, want the device connected", st, page[i:min(i+120, len(page))])
	}
}
