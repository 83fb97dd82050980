package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// A router certificate out of its validity period (expired: the commonest
// of the refusals each attempt meets again) is logged at WARN once a
// streak, as other dial refusals are (c6abc08): the streak told refusals
// apart by their text, and an expiry's holds the time of the attempt
// ("current time ... is after ..."), so that every attempt a second or
// more after the last was a new refusal, at WARN.
func TestClientExpiredCertificateWarnedOncePerStreak(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	noErr(t, "GenerateKey", err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "edgewamp client test, expired"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(-24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	noErr(t, "CreateCertificate", err)
	leaf, err := x509.ParseCertificate(der)
	noErr(t, "ParseCertificate", err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}})
	noErr(t, "Listen", err)
	defer ln.Close()
	go func() { // the handshake fails at the client, which closes
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				conn.(*tls.Conn).Handshake()
				conn.Close()
			}()
		}
	}()
	var logs lockedBuf
	cfg := Config{URL: "wss://" + ln.Addr().String() + "/ws", Realm: "realm1", DialTimeout: wait, TLS: &tls.Config{RootCAs: pool},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	count := func() (lines, warns int) {
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, "expired") {
				lines++
				if strings.Contains(l, "level=WARN") {
					warns++
				}
			}
		}
		return lines, warns
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Attempts 1.1 s apart: each in a second of its own.
	backoff := 1100 * time.Millisecond
	connected := goDo(func() (*Client, error) {
		return Connect(ctx, cfg, ReconnectConfig{MinBackoff: backoff, MaxBackoff: backoff})
	})
	deadline := time.Now().Add(3*backoff + wait)
	for n, _ := count(); n < 3; n, _ = count() {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 3 refusals logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if _, err := connected.wait(t); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Connect = %v, want the expiry", err)
	}
	if lines, warns := count(); warns != 1 {
		t.Fatalf("%d WARN lines among %d of an expired certificate in one streak, want 1:\n%s", warns, lines, logs.String())
	}
}
