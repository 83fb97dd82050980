package oauth

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Interop with a Python OAuth2 client (Authlib, Debian's python3-authlib)
// and a Python JWT library (PyJWT, python3-jwt) verifying our tokens
// through the JWKS: testdata/authlib_interop.py runs every grant,
// refresh rotation and reuse, PKCE, the device flow, introspection and
// revocation against a server on the real clock.

func pythonBin() string {
	if p := os.Getenv("EDGEWAMP_INTEROP_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3" // Debian's: the python3-* packages are installed for it
}

func needPython(t *testing.T, modules string) {
	t.Helper()
	out, err := exec.Command(pythonBin(), "-c", "import "+modules).CombinedOutput()
	if err == nil {
		return
	}
	msg := pythonBin() + " cannot import " + modules + " (apt-get install python3-authlib python3-jwt python3-requests): " + strings.TrimSpace(string(out))
	if os.Getenv("EDGEWAMP_REQUIRE_INTEROP") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func TestInteropAuthlib(t *testing.T) {
	needPython(t, "authlib, jwt, requests, cryptography")
	e := startEnv(t, func(o *Options) { o.now = time.Now; o.Realms[0].DevicePollInterval = time.Second })
	creds, _ := json.Marshal(map[string]string{"backend_secret": backendSec, "alice_pw": alicePW, "bob_pw": bobPW, "redirect_uri": redirectURI})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonBin(), "testdata/authlib_interop.py", "--issuer", e.url, "--creds", string(creds))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	checks, done := 0, false
	for sc.Scan() {
		var r struct {
			Check  string `json:"check"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
			Done   bool   `json:"done"`
		}
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			t.Errorf("authlib: unexpected output %q", sc.Text())
			continue
		}
		switch {
		case r.Done:
			done = true
		case !r.OK:
			t.Errorf("authlib: %s: FAILED %s", r.Check, r.Detail)
		default:
			checks++
			t.Logf("authlib: %s: ok", r.Check)
		}
	}
	werr := cmd.Wait()
	if werr != nil || !done || checks < 19 {
		t.Fatalf("authlib script: %v, done %v, %d checks passed\nstderr:\n%s", werr, done, checks, stderr.String())
	}
}
