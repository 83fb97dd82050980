package client

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// startTLSRouter starts a real router whose one listener serves TLS only,
// and returns its address.
func startTLSRouter(t *testing.T) string {
	t.Helper()
	cert, _ := testCert(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1", Anonymous: true}}, Shards: 1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		eng.Shutdown(ctx)
	})
	return eng.Addrs()[0].String()
}

// dialSays dials url and fails t unless Dial's error says each of want.
func dialSays(t *testing.T, url string, want ...string) {
	t.Helper()
	_, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.JSON, DialTimeout: 5 * time.Second})
	if err == nil {
		t.Fatalf("Dial %s succeeded", url)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Dial %s: %q does not say %q", url, err, w)
		}
	}
}

// A ws:// URL at a router's TLS port got the router's answer, what Go's
// net/http answers ("HTTP/1.0 400 Bad Request ... Client sent an HTTP
// request to an HTTPS server."), yet Dial failed with gobwas/ws's
// "handshake error: bad HTTP protocol version" (it refuses an HTTP/1.0
// status line), which hid it. Dial's error now says what the router
// answered, and the likely mistake.
func TestWebSocketDialAtTLSPortSaysSo(t *testing.T) {
	addr := startTLSRouter(t)
	dialSays(t, "ws://"+addr+"/ws", "router answered HTTP 400: Client sent an HTTP request to an HTTPS server (a ws:// URL for a wss:// port?)")
}

// An rs:// URL at a router's TLS port: the router closes the connection
// at the plaintext RawSocket handshake, and Dial failed "RawSocket
// handshake: EOF". It now says the router closed the connection during
// the handshake, and asks whether the port is a TLS one.
func TestRawSocketDialAtTLSPortSaysSo(t *testing.T) {
	addr := startTLSRouter(t)
	dialSays(t, "rs://"+addr, "the router closed the connection during the RawSocket handshake (a TLS port?)")
}
