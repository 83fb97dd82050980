package loop

import (
	"crypto/x509"
	"encoding/asn1"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// brainpoolChain returns a leaf for 127.0.0.1 (serial) and its key, the
// chain being the leaf then a CA whose public key is on brainpoolP256r1
// (RFC 5639), a curve OpenSSL's clients, Python's and Java's take and
// Go's x509 parser refuses ("x509: unsupported elliptic curve"). Go makes
// no such key: the CA's SubjectPublicKeyInfo is rewritten to name the
// curve (its point left as it is: nothing here verifies the chain) and
// the CA signed again.
func brainpoolChain(t testing.TB, serial int64) pemPair {
	t.Helper()
	pair, ca := rewrittenCAChain(t, serial, "brainpool CA", func(fields []asn1.RawValue) {
		var spki struct {
			Alg struct {
				Algorithm asn1.ObjectIdentifier
				Curve     asn1.ObjectIdentifier
			}
			Key asn1.BitString
		}
		if _, err := asn1.Unmarshal(fields[6].FullBytes, &spki); err != nil {
			t.Fatal(err)
		}
		spki.Alg.Curve = asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 7} // brainpoolP256r1
		bp, err := asn1.Marshal(spki)
		if err != nil {
			t.Fatal(err)
		}
		fields[6] = asn1.RawValue{FullBytes: bp}
	})
	if _, err := x509.ParseCertificate(ca); err == nil || !strings.Contains(err.Error(), "elliptic curve") {
		t.Fatalf("Go's parser on the brainpool CA: %v, want its refusal of the curve", err)
	}
	return pair
}

// A chain holding a CA certificate on a curve Go's x509 parser does not
// know (brainpoolP256r1, which BSI's TR-03116 prescribes for German smart
// meter gateways and which industrial PKIs use; secp256k1 is another) is
// loaded and served: crypto/tls sends the chain as it is, and the
// clients that verify it (OpenSSL's, Python's, Java's) know the curve.
// 60a0597 parsed every chain certificate with Go's parser, which refuses
// such a key, and so refused the pair at start and on SIGHUP ("certificate
// 2 of the chain: x509: unsupported elliptic curve"), though it was served
// before; 0ad1b05 let one of Go's refusals (a negative serial) through by
// its text. Where openssl is installed, a real brainpool chain it makes is
// served to openssl s_client, which verifies it.
func TestCertFileChainCurveGoDoesNotKnowServed(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	validPair(t, 1).install(t, certPath, keyPath)
	cf, err := LoadCertFile(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	brainpoolChain(t, 2).install(t, certPath, keyPath)
	if _, err := LoadCertFile(certPath, keyPath); err != nil {
		t.Errorf("LoadCertFile: %v", err)
	}
	if err := cf.Reload(); err != nil {
		t.Errorf("Reload: %v", err)
	}

	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("no openssl: the served chain is not verified")
		return
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(openssl, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ecparam", "-name", "brainpoolP256r1", "-genkey", "-noout", "-out", "ca.key")
	run("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=bp-ca", "-days", "1", "-out", "ca.pem",
		"-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=keyCertSign")
	run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "leaf.key")
	run("req", "-new", "-key", "leaf.key", "-subj", "/CN=127.0.0.1", "-out", "leaf.csr")
	if err := os.WriteFile(filepath.Join(dir, "ext"), []byte("subjectAltName=IP:127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "3", "-days", "1", "-extfile", "ext", "-out", "leaf.pem")
	leaf, err1 := os.ReadFile(filepath.Join(dir, "leaf.pem"))
	ca, err2 := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if err := os.WriteFile(certPath, append(leaf, ca...), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(filepath.Join(dir, "leaf.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, k, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cf.Reload(); err != nil {
		t.Fatalf("Reload of a brainpool chain made by openssl: %v", err)
	}
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", TLS: cf.TLSConfig()}}
	})
	cmd := exec.Command(openssl, "s_client", "-connect", s.url, "-CAfile", filepath.Join(dir, "ca.pem"),
		"-verify_return_error", "-verify_ip", "127.0.0.1", "-brief")
	cmd.Stdin = strings.NewReader("")
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("openssl s_client did not end: %s", out)
	}
	if err != nil || !strings.Contains(string(out), "Verification: OK") {
		t.Fatalf("openssl s_client verifying the served brainpool chain: %v\n%s", err, out)
	}
}
