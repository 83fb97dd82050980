package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClearTextWarningHidesURLCredentials: the warning that the mesh
// token crosses the network in clear text names the addresses it
// crosses to; a route's or a leaf remote's URL may carry a credential of
// its own (nats://user:password@host, nats://token@host, which NATS
// takes), and the warning quoted the URL whole: check-config printed the
// password, and run logged it at every start, into the journal, which
// more users read than the 0640 configuration file (its own warning of
// secrets in clear names the key, never the value, and edge's log lines
// and errors redact such URLs). It names them with the user part
// redacted, as edge does.
func TestClearTextWarningHidesURLCredentials(t *testing.T) {
	const secret, token = "s3cretRoutePw", "T0kenInTheUserPart"
	body := "mesh: {node: a, cluster: {listen: \"127.0.0.1:7\", routes: [\"nats://bob:" + secret + "@10.0.0.2:7222\"]}," +
		" leaf: {remotes: [\"nats://" + token + "@192.0.2.1:7422\"]}, credentials: {token: abcdefabcdefabcdefabcdef}}\n"
	p := writeFile(t, "node.yaml", body)
	_, e, code := runCLI("check-config", p)
	if code != 0 {
		t.Fatalf("check-config: exit %d: %s", code, e)
	}
	if !strings.Contains(e, "crosses the network in clear text (mesh.cluster.routes nats://bob:xxxxx@10.0.0.2:7222, mesh.leaf.remotes nats://xxxxx@192.0.2.1:7422)") {
		t.Errorf("check-config's stderr does not name the URLs, redacted:\n%s", e)
	}
	if strings.Contains(e, secret) || strings.Contains(e, token) {
		t.Errorf("check-config printed a URL's credential:\n%s", e)
	}
	// nats_url is a list: each URL is redacted, and loopback ones are
	// not warned of.
	for _, k := range []struct{ url, want string }{
		{"nats://a:" + secret + "@10.0.0.1:4222,nats://c:" + secret + "2@10.0.0.2:4222", "(mesh.nats_url nats://a:xxxxx@10.0.0.1:4222, mesh.nats_url nats://c:xxxxx@10.0.0.2:4222)"},
		{"nats://127.0.0.1:4222, nats://localhost:4223", ""},
	} {
		p := writeFile(t, "nats.yaml", "mesh: {node: a, nats_url: \""+k.url+"\", credentials: {token: abcdefabcdefabcdefabcdef}}\n")
		_, e, code := runCLI("check-config", p)
		if code != 0 {
			t.Fatalf("check-config: exit %d: %s", code, e)
		}
		if k.want == "" && strings.Contains(e, "clear text") || k.want != "" && !strings.Contains(e, k.want) {
			t.Errorf("nats_url %q: check-config's stderr:\n%s\nwant a warning naming %q (none if empty)", k.url, e, k.want)
		}
		if strings.Contains(e, secret) {
			t.Errorf("check-config printed a URL's credential:\n%s", e)
		}
	}
	// Without mesh.credentials, a URL's own user part is the credential
	// that crosses in clear: said of the URLs that have one. Before,
	// nothing was said.
	p2 := writeFile(t, "url.yaml", "mesh: {node: a, leaf: {remotes: [\"nats://bob:"+secret+"@192.0.2.1:7422\", \"nats://192.0.2.2:7422\"]}}\n")
	if _, e, code := runCLI("check-config", p2); code != 0 || !strings.Contains(e, "the credential in a mesh URL (its user part) crosses the network in clear text (mesh.leaf.remotes nats://bob:xxxxx@192.0.2.1:7422)") ||
		strings.Contains(e, "192.0.2.2") || strings.Contains(e, secret) {
		t.Errorf("a leaf remote's own credential without mesh.credentials: check-config exit %d:\n%s", code, e)
	}
	// run: the leaf remote from the flag, a hub that does not answer
	// (TEST-NET-1); the warning comes at start.
	r := launch(t, exec.Command(binPath, "run", "-config", p, "-listen", "127.0.0.1:0", "-cluster-listen", "127.0.0.1:0",
		"-leaf-remotes", "nats://"+token+"@192.0.2.1:7422"))
	r.waitLog("edgewamp started", 1)
	if !strings.Contains(r.logs(), "mesh.leaf.remotes nats://xxxxx@192.0.2.1:7422") {
		t.Errorf("run did not warn of the leaf remote:\n%s", r.logs())
	}
	if strings.Contains(r.logs(), secret) || strings.Contains(r.logs(), token) {
		t.Errorf("run logged a URL's credential:\n%s", r.logs())
	}
}
