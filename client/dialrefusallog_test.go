package client

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A dial that what answers at the URL refuses, in a way each attempt
// meets again until the router or the configuration is changed (a
// certificate the Client does not trust, an HTTP answer other than the
// upgrade: a wrong path's 404, a RawSocket handshake refused), is logged
// at WARN the first time in a streak, as a join the router refuses is:
// it was logged at INFO only, at every attempt, as a router that is down
// ("connecting failed"), so that an application logging warnings never
// heard that a node of its list could not be used.
func TestClientDialRefusalWarnedOncePerStreak(t *testing.T) {
	cert, _ := testCert(t)
	tlsPeer := newPeerTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	noErr(t, "Listen", err)
	defer ln.Close()
	go func() { // refuses every RawSocket handshake: serializer unsupported
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			var hs [4]byte
			io.ReadFull(conn, hs[:])
			conn.Write([]byte{rsMagic, 1 << 4, 0, 0})
			conn.Close()
		}
	}()
	for _, tc := range []struct{ name, url, says string }{
		{"untrusted certificate", tlsPeer.url("wss"), "certificate"},
		{"HTTP 404", "ws" + strings.TrimPrefix(notFound.URL, "http") + "/ws", "404"},
		{"RawSocket refused", "rs://" + ln.Addr().String(), "serializer unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs lockedBuf
			cfg := Config{URL: tc.url, Realm: "realm1", DialTimeout: wait,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
			count := func() (lines, warns int) {
				for l := range strings.Lines(logs.String()) {
					if strings.Contains(l, tc.says) {
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
			connected := goDo(func() (*Client, error) {
				return Connect(ctx, cfg, ReconnectConfig{MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
			})
			deadline := time.Now().Add(wait)
			for n, _ := count(); n < 3; n, _ = count() { // three attempts refused
				if time.Now().After(deadline) {
					t.Fatalf("fewer than 3 refusals logged in %v:\n%s", wait, logs.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			_, err := connected.wait(t)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Connect = %v, want the refusal (%q)", err, tc.says)
			}
			lines, warns := count()
			if lines < 3 || warns != 1 {
				t.Fatalf("%d WARN lines among %d of the refusal in one streak, want 1:\n%s", warns, lines, logs.String())
			}
		})
	}
}
