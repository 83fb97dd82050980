//go:build !nomesh

package main

import (
	"os/exec"
	"strings"
	"testing"
)

// A mesh node with mesh.cluster.listen and no mesh.cluster.routes (nor
// leaf.remotes or nats_url) keeps no JetStream store of its own (NATS
// needs configured routes for clustered JetStream: edge/node.go) and uses
// that of a cluster peer which lists it in its routes. Alone, or until
// such a peer dials it, it has none: OAuth2 answered 503 "the
// authorization server is starting: the mesh's shared state store does
// not answer yet" for ever (measured: at 8 s and 28 s) and single
// registrations waited for the claim store, while check-config said ok
// and run named no key. Both now warn, naming the keys.
func TestMeshNodeWithoutStoreWarned(t *testing.T) {
	t.Setenv("EDGEWAMP_MESH_TOKEN", sampleMeshToken)
	const warning = "warning: mesh: mesh.cluster.listen without mesh.cluster.routes: this node keeps no JetStream store"
	creds := "credentials: {token_env: EDGEWAMP_MESH_TOKEN}"
	cases := []struct {
		name, mesh string
		warned     bool
	}{
		{"a lone cluster node", "cluster: {listen: \"127.0.0.1:7222\"}", true},
		{"a cluster node and a hub, no routes", "cluster: {listen: \"127.0.0.1:7222\"}, leaf: {listen: \"127.0.0.1:7422\"}", true},
		{"a cluster node with routes", "cluster: {listen: \"127.0.0.1:7222\", routes: [\"nats://127.0.0.1:7223\"]}", false},
		{"a hub", "leaf: {listen: \"127.0.0.1:7422\"}", false},
		{"an edge", "leaf: {remotes: [\"nats://127.0.0.1:7422\"]}", false},
		{"a cluster of edges", "cluster: {listen: \"127.0.0.1:7222\"}, leaf: {remotes: [\"nats://127.0.0.1:7422\"]}", false},
		{"nats_url", "nats_url: nats://127.0.0.1:4222", false},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			p := writeFile(t, "node.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nmesh: {node: a, "+creds+", "+k.mesh+"}\n")
			_, e, code := runCLI("check-config", p)
			if code != 0 {
				t.Fatalf("check-config: exit %d: %s", code, e)
			}
			if strings.Contains(e, warning) != k.warned {
				t.Fatalf("check-config's stderr:\n%s\nwant the warning %q: %v", e, warning, k.warned)
			}
		})
	}
	// With OAuth2 on, the warning says what it costs there.
	p := writeFile(t, "oauth.yaml", oauthYAML(t, "http://gateway.test", oauthKeyFile(t), "", "")+
		"mesh: {node: a, "+creds+", cluster: {listen: \"127.0.0.1:7222\"}}\n")
	if _, e, code := runCLI("check-config", p); code != 0 || !strings.Contains(e, warning) || !strings.Contains(e, "OAuth2 answers 503") {
		t.Fatalf("check-config with OAuth2: exit %d:\n%s", code, e)
	}
	// run, as README's flags start such a node: the warning comes at start.
	r := launch(t, exec.Command(binPath, "run", "-listen", "127.0.0.1:0", "-gateway-listen", "off", "-node", "lone", "-cluster-listen", "127.0.0.1:0"))
	r.waitLog("edgewamp started", 1)
	if !strings.Contains(r.logs(), `level=WARN msg="mesh: mesh.cluster.listen without mesh.cluster.routes: this node keeps no JetStream store`) {
		t.Fatalf("run did not warn:\n%s", r.logs())
	}
}
