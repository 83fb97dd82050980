package oauth

import (
	"net/url"
	"testing"
)

// TestDeviceGrantTypeOnlyItsURN: the device grant's grant_type is
// RFC 8628's URN, the only one the metadata lists. Its configuration
// name, "device_code", is not a grant type (RFC 6749 §4.5: extension
// grants are absolute URIs) and is refused unsupported_grant_type, as any
// other unknown one; it was taken as the device grant, a poll of the code.
func TestDeviceGrantTypeOnlyItsURN(t *testing.T) {
	e := startEnv(t, nil)
	st, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if st != 200 {
		t.Fatalf("device authorization: %d %v", st, da)
	}
	dc := da["device_code"].(string)
	st, body := e.token(url.Values{"grant_type": {GrantDeviceCode}, "device_code": {dc}, "client_id": {"device"}}, "", "")
	wantOAuthError(t, st, body, 400, "unsupported_grant_type")
	// The code is untouched: its poll with the URN is the first one.
	st, body = e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "authorization_pending")
}
