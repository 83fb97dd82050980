//go:build !nomesh

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigMeshLines: README says check-config's errors name the
// line; those of the mesh: block that the edge package finds (a node name,
// a timing below its minimum, a bad route URL) named none.
func TestCheckConfigMeshLines(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"node name", "realms: [{name: r1}]\nmesh:\n  node: \"a b\"\n  cluster: {listen: \"127.0.0.1:0\"}\n",
			`line 3: mesh.node "a b" must be`},
		{"ping interval", "mesh:\n  cluster:\n    listen: \"127.0.0.1:0\"\n  ping_interval: 10ms\n",
			"line 4: mesh.ping_interval 10ms is below the minimum 100ms"},
		{"peer timeout", "mesh:\n  cluster: {listen: \"127.0.0.1:0\"}\n  heartbeat: 1s\n  peer_timeout: 1s\n",
			"line 4: mesh.peer_timeout 1s must exceed mesh.heartbeat 1s"},
		{"max inbound", "mesh:\n  cluster: {listen: \"127.0.0.1:0\"}\n\n  max_inbound: 64KiB\n",
			"line 4: mesh.max_inbound 65536 is below the minimum"},
		{"route url", "mesh:\n  cluster:\n    listen: \"127.0.0.1:0\"\n    routes:\n      - \"http://a:1\"\n",
			"line 4: mesh.cluster.routes:"},
		{"cluster name", "mesh:\n  cluster:\n    listen: \"127.0.0.1:0\"\n    name: \"a b\"\n",
			"line 4: mesh.cluster.name"},
		{"token env", "mesh:\n  cluster: {listen: \"127.0.0.1:0\"}\n  credentials:\n    token_env: EDGEWAMP_TEST_NO_SUCH_VARIABLE\n",
			"line 4: mesh.credentials.token_env:"},
	}
	dir := t.TempDir()
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(k.name, " ", "_")+".yaml")
			if err := os.WriteFile(p, []byte(k.body), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runCLI("check-config", p)
			if code != 1 || !strings.Contains(out+errOut, k.want) {
				t.Fatalf("exit %d, output %q; want exit 1 and %q", code, out+errOut, k.want)
			}
		})
	}
}
