package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A bridge publication's options (its exclude/eligible lists, up to
// max_body) were decoded into Go values before the request was
// authenticated: a request without credentials to a realm that needs
// them, refused 401 in the end, first made the gateway allocate 14 to 17
// times its body (a list of empty strings: a 16-byte string header for
// every 3 bytes, and the slice's growth), as many times as it liked (no
// credential, no failed authentication to count). The request is now
// authenticated first: a refused one costs about its body.
func TestBridgePublishOptionsDecodedAfterAuthentication(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"options":{"exclude_authid":[` + strings.Repeat(`"",`, 170000) + `""]}}`
	e.do("POST", "/wamp/secure/publish/com.pub.x", `{}`) // connections, buffers
	var resp *http.Response
	var b []byte
	n := allocatedBy(func() { resp, b = e.do("POST", "/wamp/secure/publish/com.pub.x", body) })
	expectProblem(t, resp, b, http.StatusUnauthorized, proto.URIAuthenticationRequired)
	t.Logf("a refused %d-byte publication: %d bytes allocated", len(body), n)
	if n > uint64(6*len(body)) {
		t.Errorf("a publication refused 401 with a %d-byte body allocated %.1f MB, want under 6 times the body", len(body), float64(n)/1e6)
	}
	// Malformed options are still refused once the request is
	// authenticated (realm1 admits anonymous requests).
	resp, b = e.do("POST", "/wamp/realm1/publish/com.x", `{"options":{"exclude_authid":[1]}}`)
	expectProblem(t, resp, b, http.StatusBadRequest, proto.URIInvalidArgument)
}
