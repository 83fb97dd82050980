//go:build !nomesh

package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestMeshListenerInUseNamed: a mesh listener the embedded NATS server
// cannot bind (its port in use) stops the router with an error naming the
// flag that set it, or the file's key and line, as a WAMP listener's
// names its address. Before: "edge: the NATS server did not start: Error
// listening on router port: 17989 - listen tcp ...", naming neither.
func TestMeshListenerInUseNamed(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	p := filepath.Join(t.TempDir(), "leaf.yaml")
	if err := os.WriteFile(p, []byte("listeners: [{address: \"127.0.0.1:0\"}]\ngateway: {listen: \"off\"}\nmesh:\n  node: n1\n  leaf:\n    listen: \""+addr+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-listen", "127.0.0.1:0", "-gateway-listen", "off", "-node", "n1", "-cluster-listen", addr},
			`flag -cluster-listen: mesh.cluster.listen \"` + addr + `\": the mesh cannot listen there: listen tcp ` + addr + `: bind: address already in use`},
		{[]string{"run", "-config", p},
			`line 6: mesh.leaf.listen \"` + addr + `\": the mesh cannot listen there: listen tcp ` + addr + `: bind: address already in use`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, binPath, k.args...).CombinedOutput()
		cancel()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), k.want) {
			t.Errorf("%q: exit %d, want 1 and %s in:\n%s", k.args, code, k.want, out)
		}
	}
}
