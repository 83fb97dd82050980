package oauth

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/internal/errdesc"
)

// An error_description holds only the characters RFC 6749 §5.2 allows
// (%x20-21 / %x23-5B / %x5D-7E: no double quote, backslash, control or
// non-ASCII character), and stays short. Descriptions quoted a refused
// scope with strconv.Quote (`scope "write" is not allowed ...`, quotes
// and backslashes) and echoed a refused grant_type or a repeated
// parameter's name as sent: control characters, non-ASCII, and up to the
// form's 16 KiB back in the answer; the authorization endpoint's error
// redirect carried the same text. Strict parsers may refuse or mangle such
// an error response.
func TestErrorDescriptionCharacters(t *testing.T) {
	e := startEnv(t, nil)
	legal := func(where, d string) {
		t.Helper()
		if d == "" {
			t.Fatalf("%s: no error_description", where)
		}
		if len(d) > errdesc.Max {
			t.Errorf("%s: error_description of %d bytes", where, len(d))
		}
		for i := 0; i < len(d); i++ {
			if c := d[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				t.Errorf("%s: error_description %.80q has %q at %d, outside RFC 6749 §5.2's set", where, d, c, i)
				return
			}
		}
	}
	for _, c := range []struct {
		name string
		form url.Values
		want string // the exact text (internal/errdesc writes it)
	}{
		{"scope", url.Values{"grant_type": {"client_credentials"}, "scope": {"write x\"y"}},
			"scope 'x/'y' is not allowed for this client"},
		{"grant_type", url.Values{"grant_type": {"x\"\\\x01é" + strings.Repeat("g", 10000)}},
			"grant_type x'/??" + strings.Repeat("g", 236) + "..."},
		{"repeated", url.Values{"grant_type": {"client_credentials"}, "x\x7f\"é": {"1", "2"}},
			"parameter x?'? is repeated"},
	} {
		st, body := e.token(c.form, "backend", backendSec)
		if st != 400 {
			t.Fatalf("%s: %d %v", c.name, st, body)
		}
		d, _ := body["error_description"].(string)
		legal(c.name, d)
		if d != c.want {
			t.Errorf("%s: error_description %q, want %q", c.name, d, c.want)
		}
	}
	// The authorization endpoint's error redirect (a scope the client may
	// not have).
	q := url.Values{"client_id": {"dashboard"}, "redirect_uri": {redirectURI}, "response_type": {"code"},
		"code_challenge_method": {"S256"}, "code_challenge": {strings.Repeat("A", 43)}, "scope": {"admin"}}
	hc := &http.Client{Transport: sourceClient().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(e.url + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode/100 != 3 || err != nil {
		t.Fatalf("authorize with a scope not allowed: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if loc.Query().Get("error") != "invalid_scope" {
		t.Fatalf("redirected to %s, want error=invalid_scope", loc)
	}
	legal("authorize redirect", loc.Query().Get("error_description"))
}
