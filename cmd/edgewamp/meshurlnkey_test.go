package main

import (
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

// TestClearTextWarningNKeyNamesURLCredentials: with an nkey seed as the
// mesh credential, a leaf link signs a nonce and sends no secret, so the
// clear-text warning named the routes only (their password derived from
// the seed); but a leaf remote's or nats_url's own user part
// (nats://bob:PASSWORD@hub:7422) is sent in the CONNECT line beside the
// signature (nats-server's sendLeafConnect, nats.go's connect), and went
// unwarned, where it was warned of without mesh.credentials, and with a
// token.
func TestClearTextWarningNKeyNamesURLCredentials(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	const secret = "s3cretLeafPw"
	cases := []struct{ name, mesh, want string }{
		{"leaf remote", "leaf: {remotes: [\"nats://bob:" + secret + "@192.0.2.1:7422\", \"nats://192.0.2.2:7422\"]}",
			"the credential in a mesh URL (its user part) crosses the network in clear text (mesh.leaf.remotes nats://bob:xxxxx@192.0.2.1:7422)"},
		{"nats_url", "nats_url: \"nats://192.0.2.2:4222, nats://" + secret + "@192.0.2.1:4222\"",
			"the credential in a mesh URL (its user part) crosses the network in clear text (mesh.nats_url nats://xxxxx@192.0.2.1:4222)"},
		{"route and leaf remote", "cluster: {listen: \"127.0.0.1:7\", routes: [\"nats://10.0.0.2:7222\"]}, leaf: {remotes: [\"nats://bob:" + secret + "@192.0.2.1:7422\"]}",
			"the route password derived from the nkey seed and the credential in a mesh URL (its user part) cross the network in clear text (mesh.cluster.routes nats://10.0.0.2:7222, mesh.leaf.remotes nats://bob:xxxxx@192.0.2.1:7422)"},
	}
	for _, k := range cases {
		p := writeFile(t, "node.yaml", "mesh: {node: a, "+k.mesh+", credentials: {nkey_seed: "+string(seed)+"}}\n")
		_, e, code := runCLI("check-config", p)
		if code != 0 || !strings.Contains(e, k.want) || strings.Contains(e, "192.0.2.2") || strings.Contains(e, secret) {
			t.Errorf("%s with an nkey seed: check-config exit %d, want 0 and %q:\n%s", k.name, code, k.want, e)
		}
	}
}
