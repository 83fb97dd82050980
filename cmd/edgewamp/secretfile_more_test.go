package main

import (
	"os"
	"strings"
	"testing"
)

// A secret the configuration file carries in a URL's user part (a NATS
// user and password, or a token, in mesh.nats_url, a route or a leaf
// remote: NATS reads them there) or in a request header the gateway
// sends upstream (a callee's or a webhook's Authorization, an API key
// header) is a secret in clear too: a file holding one that every local
// user may read is warned of as for the keys secretFileWarning knew.
// Before, such a file got no warning, and check-config said ok.
func TestURLAndHeaderSecretsWarned(t *testing.T) {
	const warning = "is readable by every local user (mode 0644) and holds secrets in clear ("
	for _, k := range []struct {
		name, body, want string
	}{
		{"nats_url", "mesh:\n  node: n1\n  nats_url: \"nats://svc:pa55w0rd@127.0.0.1:4222\"\n", "mesh.nats_url"},
		// nats_url is a list (edge splits it at commas): a credential in
		// a URL past the first was missed, the list taken for one URL.
		{"nats_url list", "mesh:\n  node: n1\n  nats_url: \"nats://127.0.0.1:4222, nats://svc:pa55w0rd@127.0.0.1:4223\"\n", "mesh.nats_url"},
		{"leaf remote", "mesh:\n  node: n1\n  leaf: {remotes: [\"nats://127.0.0.1:7422\", \"nats://t0ken@127.0.0.1:7423\"]}\n", "mesh.leaf.remotes[1]"},
		{"callee header", "gateway:\n  listen: 127.0.0.1:0\n  callees:\n    - {name: com.up, realm: realm1, procedure: com.up, url: \"http://127.0.0.1:1/x\", headers: {X-Trace: \"1\", Authorization: \"Bearer abcdef\"}}\n", "gateway.callees[0].headers.Authorization"},
		// net/http sends an upstream URL's user info as Basic credentials.
		{"callee URL", "gateway:\n  listen: 127.0.0.1:0\n  callees:\n    - {name: com.up, realm: realm1, procedure: com.up, url: \"http://svc:pa55w0rd@127.0.0.1:1/x\"}\n", "gateway.callees[0].url"},
		{"webhook URL", "gateway:\n  listen: 127.0.0.1:0\n  webhooks:\n    - {name: com.ev, realm: realm1, topic: com.ev, url: \"http://svc:pa55w0rd@127.0.0.1:1/x\"}\n", "gateway.webhooks[0].url"},
		{"webhook header", "gateway:\n  listen: 127.0.0.1:0\n  webhooks:\n    - {name: com.ev, realm: realm1, topic: com.ev, url: \"http://127.0.0.1:1/x\", headers: {X-Api-Key: \"abcdef\"}}\n", "gateway.webhooks[0].headers.X-Api-Key"},
		{"no secret", "mesh:\n  node: n1\n  leaf: {remotes: [\"nats://127.0.0.1:7422\"]}\ngateway:\n  listen: 127.0.0.1:0\n  callees:\n    - {name: com.up, realm: realm1, procedure: com.up, url: \"http://127.0.0.1:1/x\", headers: {X-Trace: \"1\"}}\n", ""},
	} {
		p := writeFile(t, "c.yaml", k.body)
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		_, e, code := runCLI("check-config", p)
		if code != 0 {
			t.Fatalf("%s: check-config: exit %d: %s", k.name, code, e)
		}
		if k.want == "" && strings.Contains(e, warning[:30]) || k.want != "" && !(strings.Contains(e, warning) && strings.Contains(e, k.want)) {
			t.Errorf("%s: check-config's stderr:\n%s\nwant a warning naming %q (none if empty)", k.name, e, k.want)
		}
		if strings.Contains(e, "pa55w0rd") || strings.Contains(e, "t0ken") || strings.Contains(e, "abcdef") {
			t.Errorf("%s: the warning shows the secret:\n%s", k.name, e)
		}
	}
}
