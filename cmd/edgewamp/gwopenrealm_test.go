package main

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A realm that takes anonymous clients with security off, bridged by a
// gateway other hosts reach, is as open as on such a WAMP listener: an
// anonymous POST /wamp/{realm}/call/wamp.session.kill_all ends every
// session. check-config and run say so for gateway.listen as they do for
// listeners[]. Before, only the WAMP listeners were looked at, and
// `run -gateway-listen 0.0.0.0:8081` on the embedded default served the
// whole meta API over HTTP without a word.
func TestOpenRealmWarningForGateway(t *testing.T) {
	const warn = `gateway.listen 0.0.0.0:8081: realm "realm1" takes anonymous clients with security off: anyone who reaches the port may call`
	const lo = "listeners: [{address: \"127.0.0.1:8080\"}]\n"
	cases := []struct {
		name, body string
		want       []string
	}{
		{"open realm, gateway on every interface", lo + "gateway: {listen: \"0.0.0.0:8081\"}\nrealms: [{name: realm1}]\n", []string{warn}},
		{"its bridge off", lo + "gateway: {listen: \"0.0.0.0:8081\"}\nrealms: [{name: realm1, http_bridge: false}]\n", nil},
		{"gateway on loopback", lo + "gateway: {listen: \"127.0.0.1:8081\"}\nrealms: [{name: realm1}]\n", nil},
		{"gateway off", lo + "gateway: {listen: \"off\"}\nrealms: [{name: realm1}]\n", nil},
		{"security on", lo + "gateway: {listen: \"0.0.0.0:8081\"}\nrealms:\n  - name: plant\n    security: true\n    anonymous: true\n    roles: [{name: anonymous, permissions: [{uri: com.plant., match: prefix, allow: [call]}]}]\n", nil},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", k.body)
			_, e, code := runCLI("check-config", p)
			if code != 0 {
				t.Fatalf("check-config: exit %d: %s", code, e)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(e), "\n") {
				if strings.Contains(l, "security off") {
					got = append(got, l)
				}
			}
			if len(got) != len(k.want) {
				t.Fatalf("check-config's stderr:\n%s\nwant %d open-realm lines: %q", e, len(k.want), k.want)
			}
			for i, w := range k.want {
				if !strings.HasPrefix(got[i], "edgewamp: "+p+": warning: "+w) || !strings.Contains(got[i], "http_bridge: false") {
					t.Fatalf("line %d:\n%s\nwant it to begin %q and say the fixes", i, got[i], w)
				}
			}
		})
	}
	// The embedded default with its gateway where other hosts reach it
	// (127.0.0.3 stands for such an address in the test-hook binary).
	r := launch(t, exec.Command(hookBinary(t), "run", "-listen", "127.0.0.1:0", "-gateway-listen", "127.0.0.3:0"))
	r.waitLog("edgewamp started", 1)
	r.mu.Lock()
	gw := r.gw
	r.mu.Unlock()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Post("http://"+gw+"/wamp/realm1/call/wamp.session.count", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("an anonymous call of the meta API through the gateway: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(r.logs(), `level=WARN msg="gateway.listen 127.0.0.3:`) || !strings.Contains(r.logs(), `realm \"realm1\" takes anonymous clients with security off`) {
		t.Fatalf("run on the embedded default with its gateway reachable (it answered %s to an anonymous wamp.session.count) did not warn:\n%s", body, r.logs())
	}
}
