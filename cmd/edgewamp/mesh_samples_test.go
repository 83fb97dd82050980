package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/nats-io/nkeys"
)

// recordingProxy forwards TCP connections from a loopback port to target
// and keeps every byte the dialling side sent: what an observer on the
// path between an edge box and its hub sees.
type recordingProxy struct {
	ln   net.Listener
	mu   sync.Mutex
	sent bytes.Buffer
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(c, up)
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						p.mu.Lock()
						p.sent.Write(buf[:n])
						p.mu.Unlock()
						if _, werr := up.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *recordingProxy) addr() string { return p.ln.Addr().String() }

func (p *recordingProxy) seen() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent.String()
}

// meshPKI is a mesh's CA and the certificates it signed for nodes, as
// deploy/mesh/README.md ("TLS") tells an operator to make them.
type meshPKI struct {
	dir, ca string
	caCert  *x509.Certificate
	caKey   *ecdsa.PrivateKey
}

func newMeshPKI(t *testing.T) *meshPKI {
	t.Helper()
	p := &meshPKI{dir: t.TempDir()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edgewamp-mesh-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.ca = filepath.Join(p.dir, "mesh-ca.pem")
	replaceFile(t, p.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return p
}

// node writes a node's certificate (for 127.0.0.1 and the given DNS
// names, serverAuth and clientAuth) and key, and returns their paths.
func (p *meshPKI) node(t *testing.T, name string, dns ...string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: dns,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	replaceFile(t, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	replaceFile(t, key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return cert, key
}

// withPKI returns a sample's text with its mesh.tls paths (README's
// /etc/edgewamp/mesh.pem, mesh-key.pem, mesh-ca.pem) replaced by this
// node's files.
func (p *meshPKI) withPKI(t *testing.T, sample, name string, dns ...string) string {
	t.Helper()
	if !strings.Contains(sample, "/etc/edgewamp/mesh.pem") {
		return sample
	}
	cert, key := p.node(t, name, dns...)
	return strings.NewReplacer("/etc/edgewamp/mesh.pem", cert, "/etc/edgewamp/mesh-key.pem", key,
		"/etc/edgewamp/mesh-ca.pem", p.ca).Replace(sample)
}

const sampleMeshToken = "s3cret-mesh-token-for-the-samples"

// readMeshSample reads deploy/mesh/NAME with its JetStream directory in
// the test's.
func readMeshSample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/mesh/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "/var/lib/edgewamp/jetstream", t.TempDir())
}

// deploy/mesh/edge-leaf.yaml is the sample for "an edge box that joins the
// hub as a NATS leaf node" over the Internet (nats://hub.example.net:7422),
// and hub.yaml its hub, listening on every interface. They authenticated
// the link with the mesh token only (mesh.tls commented out): the edge
// sent the token in clear text, where anyone on the path read it and
// could then join the mesh as a node (README: nodes trust each other's
// authorization decisions), and neither check-config nor run said a word.
// Now both ship with mesh.tls (the mesh's CA, the node's certificate and
// key; generated here, as deploy/mesh/README.md says), and a token on an
// address that is not loopback without TLS is warned about
// (TestMeshCleartextWarning).
//
// The samples run here unchanged but for the addresses (flags), the
// JetStream directory and the TLS files; a recording proxy stands for the
// network between them.
func TestMeshLeafSampleTokenNotInClear(t *testing.T) {
	pki := newMeshPKI(t)
	hubCfg := writeFile(t, "hub.yaml", pki.withPKI(t, readMeshSample(t, "hub.yaml"), "hub", "hub.example.net"))
	edgeCfg := writeFile(t, "edge-leaf.yaml", pki.withPKI(t, readMeshSample(t, "edge-leaf.yaml"), "edge-17"))
	leaf := edgetest.FreeAddr(t)
	env := append(os.Environ(), "EDGEWAMP_MESH_TOKEN="+sampleMeshToken)
	hubCmd := exec.Command(binPath, "run", "-config", hubCfg, "-listen", "127.0.0.1:0", "-gateway-listen", "off", "-leaf-listen", leaf)
	hubCmd.Env = env
	hub := launch(t, hubCmd)
	proxy := newRecordingProxy(t, leaf)
	edgeCmd := exec.Command(binPath, "run", "-config", edgeCfg, "-listen", "127.0.0.1:0", "-gateway-listen", "off", "-leaf-remotes", "nats://"+proxy.addr())
	edgeCmd.Env = env
	edgeNode := launch(t, edgeCmd)
	meshEventually(t, 20*time.Second, func() error {
		if !strings.Contains(hub.logs(), `msg="mesh: node joined" node=hub peer=edge-17`) {
			return io.EOF
		}
		return nil
	})
	if seen := proxy.seen(); strings.Contains(seen, sampleMeshToken) {
		i := strings.Index(seen, sampleMeshToken)
		from, to := max(0, i-60), min(len(seen), i+len(sampleMeshToken)+10)
		t.Fatalf("the shipped edge-leaf.yaml/hub.yaml pair sends the mesh token in clear text to the hub: an observer on the path read %q\n(edge log:\n%s)",
			seen[from:to], edgeNode.logs())
	}
	for _, r := range []*router{hub, edgeNode} {
		if strings.Contains(r.logs(), "clear text") {
			t.Errorf("a node with mesh.tls warns of clear text:\n%s", r.logs())
		}
	}
}

// Without mesh.tls, a token (or the route password derived from an nkey
// seed) on a route, leaf or nats_url address that is not loopback is sent
// in clear text: check-config and run say so (a warning, not a refusal: a
// lab or private network may do without TLS); on loopback, or with
// mesh.tls, they do not.
func TestMeshCleartextWarning(t *testing.T) {
	t.Setenv("EDGEWAMP_MESH_TOKEN", sampleMeshToken)
	noTLS := regexp.MustCompile(`(?m)^  tls: .*\n`)
	pki := newMeshPKI(t)
	const warning = "crosses the network in clear text"
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	cases := []struct {
		name, body string
		want       string // in the warning; "" for none
	}{
		{"edge-leaf.yaml without tls", noTLS.ReplaceAllString(readMeshSample(t, "edge-leaf.yaml"), ""), "leaf.remotes nats://hub.example.net:7422"},
		{"hub.yaml without tls", noTLS.ReplaceAllString(readMeshSample(t, "hub.yaml"), ""), "mesh.leaf.listen 0.0.0.0:7422"},
		{"edge-leaf.yaml as shipped", pki.withPKI(t, readMeshSample(t, "edge-leaf.yaml"), "edge"), ""},
		{"hub.yaml as shipped", pki.withPKI(t, readMeshSample(t, "hub.yaml"), "hub"), ""},
		{"routes on loopback", "mesh: {node: a, cluster: {listen: \"127.0.0.1:7\", routes: [\"nats://localhost:2\"]}, credentials: {token_env: EDGEWAMP_MESH_TOKEN}}\n", ""},
		{"nkey seed on a route", "mesh: {node: a, cluster: {listen: \"127.0.0.1:7\", routes: [\"nats://10.0.0.2:7222\"]}, credentials: {nkey_seed: " + string(seed) + "}}\n",
			"the route password derived from the nkey seed crosses the network in clear text (mesh.cluster.routes nats://10.0.0.2:7222)"},
		{"nkey seed on a leaf link (a signed nonce, no secret)", "mesh: {node: a, leaf: {remotes: [\"nats://10.0.0.2:7422\"]}, credentials: {nkey_seed: " + string(seed) + "}}\n", ""},
		{"no credentials", "mesh: {node: a, leaf: {remotes: [\"nats://10.0.0.2:7422\"]}}\n", ""},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			p := writeFile(t, "node.yaml", k.body)
			_, e, code := runCLI("check-config", p)
			if code != 0 {
				t.Fatalf("check-config: exit %d: %s", code, e)
			}
			if k.want == "" && strings.Contains(e, warning) || k.want != "" && !(strings.Contains(e, "warning: mesh: without mesh.tls") && strings.Contains(e, k.want)) {
				t.Fatalf("check-config's stderr:\n%s\nwant a warning naming %q (none if empty)", e, k.want)
			}
		})
	}
	// run: the edge without TLS, dialling a hub that does not answer
	// (TEST-NET-1); the warning comes at start.
	edgeCfg := writeFile(t, "edge-leaf.yaml", noTLS.ReplaceAllString(readMeshSample(t, "edge-leaf.yaml"), ""))
	r := launch(t, exec.Command(binPath, "run", "-config", edgeCfg, "-listen", "127.0.0.1:0", "-leaf-remotes", "nats://192.0.2.1:7422"))
	r.waitLog("edgewamp started", 1)
	if !strings.Contains(r.logs(), `level=WARN msg="mesh: without mesh.tls, the mesh token crosses the network in clear text (mesh.leaf.remotes nats://192.0.2.1:7422)`) {
		t.Fatalf("run did not warn:\n%s", r.logs())
	}
}

// A mesh port (cluster.listen, leaf.listen) on an address other hosts
// reach, without a credential (mesh.credentials) or mesh.tls with a ca,
// admits any node that reaches it, which then joins the mesh as a node:
// check-config and run say so, naming the ports (a warning, not a
// refusal, as for clear text: a lab or a private network may do
// without). README's own command-line examples (-cluster-listen
// 0.0.0.0:7222, -leaf-listen 0.0.0.0:7422, no flag for a credential) made
// such a mesh, and nothing said it. On loopback, with a credential, or
// with mutual TLS, nothing is said; TLS without a ca admits any node that
// speaks it, so it is said.
func TestMeshOpenPortWarning(t *testing.T) {
	t.Setenv("EDGEWAMP_MESH_TOKEN", sampleMeshToken)
	pki := newMeshPKI(t)
	cert, key := pki.node(t, "hub")
	const warning = "admits any node that reaches it"
	cases := []struct {
		name, body string
		want       string // the ports in the warning; "" for none
	}{
		{"routes on every interface", "mesh: {node: a, cluster: {listen: \"0.0.0.0:7222\", routes: [\"nats://10.0.0.2:7222\"]}}\n", "mesh.cluster.listen 0.0.0.0:7222"},
		{"hub on no host", "mesh: {node: hub, leaf: {listen: \":7422\"}}\n", "mesh.leaf.listen :7422"},
		{"both", "mesh: {node: hub, cluster: {listen: \"192.0.2.7:7222\"}, leaf: {listen: \"[::]:7422\"}}\n", "mesh.cluster.listen 192.0.2.7:7222, mesh.leaf.listen [::]:7422"},
		{"tls without ca", "mesh: {node: hub, leaf: {listen: \"0.0.0.0:7422\"}, tls: {cert: " + cert + ", key: " + key + "}}\n", "mesh.leaf.listen 0.0.0.0:7422"},
		{"tls with ca", "mesh: {node: hub, leaf: {listen: \"0.0.0.0:7422\"}, tls: {cert: " + cert + ", key: " + key + ", ca: " + pki.ca + "}}\n", ""},
		{"a token", "mesh: {node: hub, leaf: {listen: \"0.0.0.0:7422\"}, credentials: {token_env: EDGEWAMP_MESH_TOKEN}}\n", ""},
		{"loopback", "mesh: {node: a, cluster: {listen: \"127.0.0.1:7222\", routes: [\"nats://localhost:7223\"]}, leaf: {listen: \"localhost:7422\"}}\n", ""},
		{"an edge only dials", "mesh: {node: a, leaf: {remotes: [\"nats://10.0.0.2:7422\"]}}\n", ""},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			p := writeFile(t, "node.yaml", k.body)
			_, e, code := runCLI("check-config", p)
			if code != 0 {
				t.Fatalf("check-config: exit %d: %s", code, e)
			}
			if k.want == "" && strings.Contains(e, warning) ||
				k.want != "" && !strings.Contains(e, "warning: mesh: without mesh.credentials or mesh.tls with a ca, "+k.want+" "+warning) {
				t.Fatalf("check-config's stderr:\n%s\nwant a warning naming %q (none if empty)", e, k.want)
			}
		})
	}
	// run, as README's example starts a hub (on port 0): the warning comes
	// at start.
	r := launch(t, exec.Command(binPath, "run", "-listen", "127.0.0.1:0", "-gateway-listen", "off", "-node", "hub", "-leaf-listen", "0.0.0.0:0"))
	r.waitLog("edgewamp started", 1)
	if !strings.Contains(r.logs(), `level=WARN msg="mesh: without mesh.credentials or mesh.tls with a ca, mesh.leaf.listen 0.0.0.0:0 `+warning) {
		t.Fatalf("run did not warn:\n%s", r.logs())
	}
}
