package loop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// rewrittenCAChain returns a leaf for 127.0.0.1 (serial) and its key,
// the chain being the leaf then a CA (named caName) whose tbsCertificate
// rewrite changes (its fields: version, serial, signature, issuer,
// validity, subject, spki, ...) before the CA is signed again with its own
// key, and the rewritten CA's DER: certificates Go's CreateCertificate
// refuses to make but OpenSSL makes and its clients take.
func rewrittenCAChain(t testing.TB, serial int64, caName string, rewrite func(fields []asn1.RawValue)) (pemPair, []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(12345), Subject: pkix.Name{CommonName: caName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "edgewamp test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	var whole struct {
		TBS asn1.RawValue
		Alg asn1.RawValue
		Sig asn1.BitString
	}
	if _, err := asn1.Unmarshal(caDER, &whole); err != nil {
		t.Fatal(err)
	}
	var fields []asn1.RawValue
	for rest := whole.TBS.Bytes; len(rest) > 0; {
		var f asn1.RawValue
		if rest, err = asn1.Unmarshal(rest, &f); err != nil {
			t.Fatal(err)
		}
		fields = append(fields, f)
	}
	rewrite(fields)
	var body []byte
	for _, f := range fields {
		body = append(body, f.FullBytes...)
	}
	tbs, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	h := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, caKey, h[:])
	if err != nil {
		t.Fatal(err)
	}
	ca, err := asn1.Marshal(struct {
		TBS asn1.RawValue
		Alg asn1.RawValue
		Sig asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, asn1.RawValue{FullBytes: whole.Alg.FullBytes}, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca})...)
	return pemPair{cert: chain, key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), serial: serial}, ca
}

// negativeSerialChain returns a leaf for 127.0.0.1 (serial) and its key,
// signed by a CA whose certificate has a negative serial number, the
// chain being the leaf then the CA, and the CA's DER. OpenSSL makes such
// CAs (openssl req -x509 -set_serial -12345) and its clients verify them;
// Go's x509 parser refuses them since Go 1.23 unless GODEBUG
// x509negativeserial=1; Go's CreateCertificate refuses to make one.
func negativeSerialChain(t testing.TB, serial int64) (pemPair, []byte) {
	t.Helper()
	pair, ca := rewrittenCAChain(t, serial, "negative serial CA", func(fields []asn1.RawValue) {
		neg, _ := asn1.Marshal(big.NewInt(-12345))
		fields[1] = asn1.RawValue{FullBytes: neg}
	})
	if _, err := x509.ParseCertificate(ca); err == nil {
		t.Fatal("the CA with a negative serial parses: this Go no longer refuses them")
	}
	return pair, ca
}

// A chain whose CA certificate has a negative serial number (which
// OpenSSL makes, and OpenSSL's clients, Python's and browsers' verify) is
// loaded and served: crypto/tls sends the chain as it is. 60a0597's trial
// handshake used a Go client, whose parser refuses negative serials since
// Go 1.23, and so refused the pair at start ("x509: negative serial
// number") and on SIGHUP, though every client that is not Go's (or Go's
// with GODEBUG x509negativeserial=1) was served by it before. A chain
// certificate that is no certificate at all is still refused
// (TestCertFileReloadRefusesUnservablePair).
func TestCertFileNegativeSerialChainServed(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	validPair(t, 1).install(t, certPath, keyPath)
	cf, err := LoadCertFile(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", TLS: cf.TLSConfig()}}
	})
	pair, caDER := negativeSerialChain(t, 2)
	pair.install(t, certPath, keyPath)
	if _, err := LoadCertFile(certPath, keyPath); err != nil {
		t.Errorf("LoadCertFile: %v", err)
	}
	if err := cf.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	// A client that takes negative serials, as OpenSSL's do, verifies the
	// served chain against the CA.
	t.Setenv("GODEBUG", "x509negativeserial=1")
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("parsing the CA with x509negativeserial=1: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.url, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("a verifying client: %v", err)
	}
	defer c.Close()
	if got := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 2 {
		t.Fatalf("served serial %d, want 2", got)
	}
}
