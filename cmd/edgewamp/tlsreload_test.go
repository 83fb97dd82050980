package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// writePair writes a self-signed certificate for 127.0.0.1 with the given
// serial number, and its key, as PEM files (each written to a temporary
// name and renamed into place, as rotation tools do).
func writePair(t *testing.T, certPath, keyPath string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "edgewamp test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	replaceFile(t, keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".new", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// waitLog waits until the router's log has n lines containing s.
func (r *router) waitLog(s string, n int) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(r.logs(), s) < n {
		if time.Now().After(deadline) {
			r.t.Fatalf("no %d× %q in the log:\n%s", n, s, r.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SIGHUP rotates the certificate of a TLS listener without a restart; a
// bad pair is refused and the one in use stays; a session made before
// the rotation keeps working; a broken configuration file does not hold
// up a rotation.
func TestTLSCertificateRotationOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, certPath, keyPath, 1)
	cfgPath := writeFile(t, "tls.yaml", "listeners:\n  - address: 127.0.0.1:0\n    tls: {cert: "+certPath+", key: "+keyPath+"}\nrealms: [{name: realm1}]\n")
	r := launch(t, exec.Command(binPath, "run", "-config", cfgPath))
	if got := servedSerial(t, r.addr); got != 1 {
		t.Fatalf("serial %d at start", got)
	}
	early, err := client.Dial(t.Context(), client.Config{URL: "rss://" + r.addr, Realm: "realm1", Serializer: proto.CBOR,
		TLS: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()

	writePair(t, certPath, keyPath, 2)
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("TLS certificate reloaded", 1)
	if got := servedSerial(t, r.addr); got != 2 {
		t.Fatalf("serial %d after the rotation, want 2", got)
	}

	// A key that does not belong to the certificate: refused, 2 stays.
	good, _ := os.ReadFile(keyPath)
	writePair(t, certPath+".x", keyPath, 3) // a new key, and a certificate elsewhere
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("TLS certificate refused", 1)
	if got := servedSerial(t, r.addr); got != 2 {
		t.Fatalf("serial %d after a bad pair, want the old 2", got)
	}
	replaceFile(t, keyPath, good)

	// A broken configuration file is refused, the certificate still
	// rotates.
	writePair(t, certPath, keyPath, 4)
	replaceFile(t, cfgPath, []byte("realms: [\n"))
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("configuration refused", 1)
	r.waitLog("TLS certificate reloaded", 2)
	if got := servedSerial(t, r.addr); got != 4 {
		t.Fatalf("serial %d, want 4", got)
	}
	if _, err := early.Call(t.Context(), "wamp.session.count", nil, nil, nil); err != nil {
		t.Fatalf("session from before the rotations: %v", err)
	}
}

// SIGHUP re-reads "the TLS certificates" (the unit's comment, the man
// page, README's Reload) and its log line says "... runtime and TLS
// certificates apply now". mesh.tls's certificate was loaded once at
// start (meshOptions) and never again: a node kept presenting the
// certificate it started with on its route and leaf ports after the file
// was rotated and the reload said the certificates apply, until it
// expired and the other nodes (with mesh.tls.ca) refused it: with
// short-lived certificates the mesh split at the first expiry, though
// every reload said all was well. Now the node serves the pair through a
// loop.CertFile that SIGHUP re-reads with the listeners'.
func TestMeshTLSCertificateReloadedOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "mesh.pem"), filepath.Join(dir, "mesh-key.pem")
	writePair(t, certPath, keyPath, 1)
	leaf := edgetest.FreeAddr(t)
	cfgPath := writeFile(t, "hub.yaml", "realms: [{name: realm1}]\nmesh:\n  node: hub\n  leaf: {listen: "+leaf+"}\n  credentials: {token: review-token}\n"+
		"  tls: {cert: "+certPath+", key: "+keyPath+"}\n")
	r := launch(t, exec.Command(binPath, "run", "-config", cfgPath, "-listen", "127.0.0.1:0"))
	serial := func() int64 {
		c, err := net.DialTimeout("tcp", leaf, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		// NATS sends its INFO line in the clear, then the client starts TLS.
		br := bufio.NewReader(c)
		if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "INFO ") {
			t.Fatalf("leaf port: %q %v", line, err)
		}
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake on the leaf port: %v", err)
		}
		return tc.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 1 {
		t.Fatalf("serial %d at start", got)
	}
	writePair(t, certPath, keyPath, 2)
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("SIGHUP: configuration reloaded", 1)
	for _, l := range strings.Split(r.logs(), "\n") {
		if strings.Contains(l, "SIGHUP") {
			t.Logf("%s", l)
		}
	}
	if !strings.Contains(r.logs(), `msg="SIGHUP: TLS certificate reloaded" cert=`+certPath+` serial=2`) {
		t.Errorf("no reload of %s logged", certPath)
	}
	if got := serial(); got != 2 {
		t.Fatalf("the mesh's leaf port presents certificate serial %d after the file was rotated to serial 2 and SIGHUP logged that TLS certificates apply now", got)
	}
}
