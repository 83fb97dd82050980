package oauth

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A request whose Authorization header is a Basic one that does not
// decode (not base64, no colon, or a part not form-urlencoded) is refused
// 401 invalid_client with the Basic challenge, whatever the form holds
// (RFC 6749 §2.3: a client "MUST NOT use more than one authentication
// method in each request"). Before, net/http's BasicAuth reported no
// Basic credentials for such a header, and the form's client_id and
// client_secret were taken instead: 200 with a token.
func TestBasicHeaderMalformedRefused(t *testing.T) {
	e := startEnv(t, nil)
	forms := map[string]url.Values{
		"confidential": {"grant_type": {"client_credentials"}, "client_id": {"backend"}, "client_secret": {backendSec}},
		"public":       {"grant_type": {"password"}, "client_id": {"cli"}, "username": {"alice"}, "password": {alicePW}},
	}
	headers := map[string]string{
		"not base64":  "Basic !!!not-base64!!!",
		"no colon":    "Basic " + base64.StdEncoding.EncodeToString([]byte("backend")),
		"bad escape":  "Basic " + base64.StdEncoding.EncodeToString([]byte("backend:%zz")),
		"lower basic": "basic ***",
	}
	for fname, form := range forms {
		for hname, h := range headers {
			t.Run(fname+"/"+hname, func(t *testing.T) {
				req, _ := http.NewRequest("POST", e.url+"/oauth/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", h)
				resp, err := e.hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("a %s form beside a Basic header (%s): %d, WWW-Authenticate %q; want 401 invalid_client with the challenge",
						fname, hname, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
				}
			})
		}
	}
}
