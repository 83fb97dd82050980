package loop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// pemPair is a self-signed certificate for 127.0.0.1 as PEM.
type pemPair struct {
	cert, key []byte
	serial    int64
}

func newPEMPair(t testing.TB, serial int64, notBefore, notAfter time.Time) pemPair {
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
	return pemPair{
		cert:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		serial: serial,
	}
}

func validPair(t testing.TB, serial int64) pemPair {
	return newPEMPair(t, serial, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

// install writes a pair the way a rotation tool does: to a temporary file,
// then renamed over the old one.
func (p pemPair) install(t testing.TB, certPath, keyPath string) {
	t.Helper()
	writeAtomic(t, certPath, p.cert)
	writeAtomic(t, keyPath, p.key)
}

func writeAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func servedSerial(t testing.TB, cf *CertFile) int64 {
	t.Helper()
	return cf.Certificate().Leaf.SerialNumber.Int64()
}

// Reload swaps in a good pair and refuses every kind of bad one, keeping
// the pair in use.
func TestCertFileReload(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	a := validPair(t, 1)
	a.install(t, certPath, keyPath)
	cf, err := LoadCertFile(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if servedSerial(t, cf) != 1 || cf.Expired() {
		t.Fatalf("loaded serial %d, expired %v", servedSerial(t, cf), cf.Expired())
	}
	b := validPair(t, 2)
	b.install(t, certPath, keyPath)
	if err := cf.Reload(); err != nil {
		t.Fatal(err)
	}
	if servedSerial(t, cf) != 2 {
		t.Fatalf("after reload: serial %d, want 2", servedSerial(t, cf))
	}
	if err := cf.Reload(); err != nil || servedSerial(t, cf) != 2 {
		t.Fatalf("same pair again: %v, serial %d", err, servedSerial(t, cf))
	}

	c := validPair(t, 3)
	old := newPEMPair(t, 4, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	future := newPEMPair(t, 5, time.Now().Add(time.Hour), time.Now().Add(2*time.Hour))
	bad := []struct {
		name      string
		cert, key []byte
		want      error
	}{
		{"garbage certificate", []byte("not a certificate"), c.key, nil},
		{"garbage key", c.cert, []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), nil},
		{"key of another certificate", c.cert, b.key, nil},
		{"empty files", nil, nil, nil},
		{"expired", old.cert, old.key, ErrCertExpired},
		{"not yet valid", future.cert, future.key, ErrCertExpired},
		{"half-written rotation: new certificate, old key", c.cert, b.key, nil},
	}
	for _, k := range bad {
		writeAtomic(t, certPath, k.cert)
		writeAtomic(t, keyPath, k.key)
		err := cf.Reload()
		if err == nil {
			t.Fatalf("%s: accepted", k.name)
		}
		if k.want != nil && !errors.Is(err, k.want) {
			t.Fatalf("%s: %v, want %v", k.name, err, k.want)
		}
		if servedSerial(t, cf) != 2 {
			t.Fatalf("%s: serial %d in use, want the old 2", k.name, servedSerial(t, cf))
		}
	}
	os.Remove(keyPath)
	if err := cf.Reload(); err == nil || servedSerial(t, cf) != 2 {
		t.Fatalf("missing key: %v, serial %d", err, servedSerial(t, cf))
	}
	c.install(t, certPath, keyPath)
	if err := cf.Reload(); err != nil || servedSerial(t, cf) != 3 {
		t.Fatalf("good pair after bad ones: %v, serial %d", err, servedSerial(t, cf))
	}

	// An expired pair still loads at start (the router starts; Expired
	// tells the caller to warn).
	old.install(t, certPath, keyPath)
	cf2, err := LoadCertFile(certPath, keyPath)
	if err != nil || !cf2.Expired() {
		t.Fatalf("expired pair at start: %v, expired %v", err, cf2 != nil && cf2.Expired())
	}
	if _, err := LoadCertFile(filepath.Join(dir, "none.pem"), keyPath); err == nil {
		t.Fatal("missing certificate accepted at start")
	}
}

// handshakeSerial dials addr over TLS and returns the serial number of the
// certificate the server presented.
func handshakeSerial(t testing.TB, addr string) (int64, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// Through the engine: new handshakes get the rotated certificate, a
// session established before the rotation keeps working, and handshakes
// racing reloads always get one whole pair (run with -race).
func TestCertFileRotationThroughEngine(t *testing.T) {
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
		t.Fatalf("before rotation: serial %d, %v", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	early, err := client.Dial(ctx, client.Config{URL: "rss://" + s.url, Realm: "realm1", Serializer: proto.MsgPack,
		TLS: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()

	validPair(t, 2).install(t, certPath, keyPath)
	if err := cf.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, err := handshakeSerial(t, s.url); err != nil || got != 2 {
		t.Fatalf("after rotation: serial %d, %v", got, err)
	}
	if _, err := early.Call(ctx, "wamp.session.count", nil, nil, nil); err != nil {
		t.Fatalf("session from before the rotation: %v", err)
	}

	// Handshakes while the pair rotates between 3 and 4 (and a bad pair
	// now and then, which must be refused without disturbing anything).
	pairs := []pemPair{validPair(t, 3), validPair(t, 4)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := handshakeSerial(t, s.url)
				if err != nil {
					errs <- err
					return
				}
				if got < 2 || got > 4 {
					errs <- errors.New("unexpected serial")
					return
				}
			}
		}()
	}
	for i := 0; i < 40; i++ {
		if i%5 == 4 {
			writeAtomic(t, keyPath, []byte("broken"))
			if cf.Reload() == nil {
				t.Fatal("broken key accepted")
			}
		}
		pairs[i%2].install(t, certPath, keyPath)
		if err := cf.Reload(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("handshake during rotation: %v", err)
	default:
	}
}
