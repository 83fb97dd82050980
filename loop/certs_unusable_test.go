package loop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// p224Pair is a valid, matching certificate and key on the P-224 curve:
// x509 parses it and tls.X509KeyPair loads it, but crypto/tls signs
// handshakes with P-256, P-384 and P-521 keys only ("unsupported
// certificate curve"), so no client can complete a handshake with it.
func p224Pair(t testing.TB, serial int64) pemPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
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
	return pemPair{
		cert:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		serial: serial,
	}
}

// A pair that loads and matches but with which no TLS 1.3 handshake
// completes — a key crypto/tls cannot sign with (P-224; an RSA key under
// 1,024 bits is another), a chain holding a certificate clients cannot
// parse — is refused by Reload like any bad pair, and by LoadCertFile, and
// the listener keeps serving the pair in use. Before, Reload took it and
// every new handshake failed ("unsupported certificate curve", "failed to
// parse certificate from server") until the next good SIGHUP, while the
// log said "TLS certificate reloaded".
func TestCertFileReloadRefusesUnservablePair(t *testing.T) {
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
	if got, err := handshakeSerial(t, s.url); err != nil || got != 1 {
		t.Fatalf("before the reload: serial %d, %v", got, err)
	}

	brokenChain := validPair(t, 2)
	brokenChain.cert = append(brokenChain.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE",
		Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}})...) // an "intermediate" that is no certificate
	for _, k := range []struct {
		name string
		pair pemPair
	}{
		{"P-224 key", p224Pair(t, 2)},
		{"malformed certificate in the chain", brokenChain},
	} {
		k.pair.install(t, certPath, keyPath)
		if err := cf.Reload(); err == nil {
			t.Errorf("%s: Reload accepted a pair crypto/tls cannot serve", k.name)
		}
		if got, err := handshakeSerial(t, s.url); err != nil || got != 1 {
			t.Fatalf("%s: after the refused reload: serial %d, %v (want the pair in use, 1)", k.name, got, err)
		}
		if _, err := LoadCertFile(certPath, keyPath); err == nil {
			t.Errorf("%s: LoadCertFile accepted a pair crypto/tls cannot serve", k.name)
		}
	}

	validPair(t, 3).install(t, certPath, keyPath)
	if err := cf.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, err := handshakeSerial(t, s.url); err != nil || got != 3 {
		t.Fatalf("after a good reload: serial %d, %v", got, err)
	}
}
