package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/loop"
)

// writePairValid is writePair with a validity period of one's choosing.
func writePairValid(t *testing.T, certPath, keyPath string, serial int64, notBefore, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "edgewamp test"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
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

// A host whose clock is behind (a board that starts at 1970 before NTP):
// the certificate in use is "not yet valid" by it, and so is its renewal.
// SIGHUP refused the renewal ("not valid now"), keeping the older pair,
// as invalid by the same clock. Now the renewal is taken and the log
// line says why it was taken although the clock disagrees; a pair not
// valid now is still refused while the one in use is valid, the log line
// saying so.
func TestSIGHUPTakesRenewalWhenClockIsBehind(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	now := time.Now()
	year := 365 * 24 * time.Hour
	writePairValid(t, certPath, keyPath, 1, now.Add(year), now.Add(year+90*24*time.Hour))
	cf, err := loop.LoadCertFile(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	certs := []*loop.CertFile{cf}

	writePairValid(t, certPath, keyPath, 2, now.Add(year+30*24*time.Hour), now.Add(year+120*24*time.Hour))
	err = reloadCerts(certs, log)
	t.Logf("clock behind both pairs: %v\n%s", err, buf.String())
	if err != nil || cf.Certificate().Leaf.SerialNumber.Int64() != 2 {
		t.Fatalf("renewal refused although the pair in use is not valid by the clock either: %v", err)
	}
	if line := buf.String(); !strings.Contains(line, "level=WARN") || !strings.Contains(line, "is the clock set") {
		t.Fatalf("the log line does not say why a pair not valid now was taken: %q", line)
	}

	buf.Reset()
	writePairValid(t, certPath, keyPath, 3, now.Add(-time.Hour), now.Add(year))
	if err := reloadCerts(certs, log); err != nil || cf.Certificate().Leaf.SerialNumber.Int64() != 3 {
		t.Fatalf("a valid pair: %v", err)
	}
	buf.Reset()
	writePairValid(t, certPath, keyPath, 4, now.Add(24*time.Hour), now.Add(2*year))
	err = reloadCerts(certs, log)
	t.Logf("a pair not yet valid, the one in use valid: %v\n%s", err, buf.String())
	if err == nil || cf.Certificate().Leaf.SerialNumber.Int64() != 3 {
		t.Fatal("a pair not yet valid taken while the one in use is valid")
	}
	if line := buf.String(); !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "the one in use is valid now") {
		t.Fatalf("the log line does not say why the pair was refused: %q", line)
	}
}
