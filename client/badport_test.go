package client

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A URL whose port no dial can use (a port past 65535 or 0, an empty
// one, a host:port with a colon too many)
// is refused by Dial before dialing, and so by Connect at once, as a bad
// scheme is, even when it is not the first URL and the others answer:
// before, Connect took it, and the Client dialled it in every round of
// its reconnections for ever ("invalid port", "connection refused" on
// port 0), logged at INFO as a router that is down.
func TestConnectRefusesURLsNoDialCanUse(t *testing.T) {
	good := startRouter(t)
	rc := ReconnectConfig{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	for _, bad := range []string{
		"ws://127.0.0.1:99999/ws",
		"rs://127.0.0.1:70000",
		"ws://127.0.0.1:/ws",
		"rs://127.0.0.1:0",
		"ws://127.0.0.1:8080:9/ws",
	} {
		t.Run(bad, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			rc := rc
			rc.URLs = []string{bad}
			cl, err := Connect(ctx, Config{URL: good, Realm: "realm1"}, rc)
			if err == nil {
				cl.Close()
				t.Fatalf("Connect took %q (a Client that dials it in every round)", bad)
			}
			if !strings.Contains(err.Error(), bad) {
				t.Fatalf("Connect error = %v, want one naming %q", err, bad)
			}
		})
	}
	// What a dial can use still passes: no port for WebSocket (the
	// scheme's), a bracketed IPv6 address, a port with leading zeros.
	for _, ok := range []string{"ws://[::1]/ws", "wss://example.com/ws", "ws://127.0.0.1:00080/ws", "rss://[::1]:8443"} {
		cfg := Config{URL: ok, Realm: "r"}
		if _, _, err := cfg.normalize(); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}
