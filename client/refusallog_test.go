package client

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A Client whose router refuses its joins after a loss (its credentials
// revoked, its realm removed: ABORT wamp.error.authentication_failed,
// no_such_realm) retries for ever, and said so only at INFO, beside the
// transient "connecting failed" of a router restarting: an application
// whose Config.Logger takes warnings and errors never heard that its
// client could not log in any more (as with a restore refused for good,
// 7653eab). A join the router refuses is logged at WARN, with its reason.
func TestClientJoinRefusalLoggedAsWarning(t *testing.T) {
	p := newPeer(t)
	var logs lockedBuf
	cfg := clientCfg(p)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cl, c := connectPeer(t, p, cfg, ReconnectConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	defer closeClient(cl, p)
	c.conn.Close()
	c = p.accept()
	c.expect(proto.CodeHello)
	c.send(&proto.Message{Type: proto.CodeAbort, URI: []byte(proto.URIAuthenticationFailed)})
	deadline := time.Now().Add(wait)
	for !strings.Contains(logs.String(), proto.URIAuthenticationFailed) {
		if time.Now().After(deadline) {
			t.Fatalf("the router's refusal of the join not logged at WARN within %v; log:\n%s", wait, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
