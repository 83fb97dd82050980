package load

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// TestEndToEndTLS runs the TLS endpoints (wss://, rss://) of the tool
// against an in-process edgewamp with a TLS listener: sessions on the
// tool's event loops (idle, rpc) and on goroutines (rpc -driver
// goroutine).
func TestEndToEndTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wampbench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1", Anonymous: true}}, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	// No bound on TLS handshakes per address: the tool's 100 idle sessions
	// all come from 127.0.0.1 at once.
	e, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0",
		TLS: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}},
		MaxTLSHandshakesPerAddress: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	}()
	addr := e.Addrs()[0].String()
	for _, c := range []struct {
		name  string
		cfg   Config
		check map[string]func(float64) bool
	}{
		{"idle rss", Config{Scenario: "idle", URL: "rss://" + addr, Ser: proto.MsgPack, Sessions: 100, Procs: 1, Settle: 10 * time.Millisecond},
			map[string]func(float64) bool{"joined": equal(100), "failed": zero, "fds_per_session": present}},
		{"rpc wss", Config{Scenario: "rpc", URL: "wss://" + addr + "/ws", Ser: proto.MsgPack, Callers: 4},
			map[string]func(float64) bool{"calls": positive, "errors": zero, "lost": zero}},
		{"rpc rss goroutines", Config{Scenario: "rpc", URL: "rss://" + addr, Ser: proto.JSON, Callers: 2, Driver: "goroutine"},
			map[string]func(float64) bool{"calls": positive, "errors": zero}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Warmup, cfg.Duration, cfg.Timeout, cfg.RouterPID, cfg.Label = 100*time.Millisecond, 400*time.Millisecond, 10*time.Second, os.Getpid(), "tls"
			res, err := Run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m, ok := ParseResult(res.String())
			if !ok || m["transport"][1:] != "ss" {
				t.Fatalf("RESULT %q", res.String())
			}
			for k, want := range c.check {
				v, present := m[k]
				f := -1.0
				if present {
					if f, err = strconv.ParseFloat(v, 64); err != nil {
						t.Errorf("%s=%q is not a number", k, v)
						continue
					}
				}
				if !want(f) {
					t.Errorf("%s=%q unexpected", k, v)
				}
			}
		})
	}
}
