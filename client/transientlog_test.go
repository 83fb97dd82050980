package client

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Since 16bc4d5 every join the router refuses is logged at WARN, also
// those that say nothing of the client: a router shutting down
// (wamp.close.system_shutdown, as edgewamp answers a HELLO during its
// stop) or busy (authentication_failed "router busy: too many
// authentications in progress"). A Client reconnecting through a rolling
// restart wrote a WARN line at every attempt, the first telling all the
// rest did. The first of a streak of such refusals is still logged at
// WARN; the repeats go to INFO until a session is joined again.
func TestClientTransientJoinRefusalWarnedOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		abrt *proto.Message
	}{
		{"shutdown", &proto.Message{Type: proto.CodeAbort, URI: []byte(proto.CloseSystemShutdown)}},
		{"busy", func() *proto.Message {
			m := &proto.Message{Type: proto.CodeAbort, URI: []byte(proto.URIAuthenticationFailed)}
			m.Opt.SetString(proto.KeyMessage, "router busy: too many authentications in progress")
			return m
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t)
			var logs lockedBuf
			cfg := clientCfg(p)
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			lines := func(level string) (n int) {
				for l := range strings.Lines(logs.String()) {
					if strings.Contains(l, "refused the join") && strings.Contains(l, level) {
						n++
					}
				}
				return n
			}
			cl, c := connectPeer(t, p, cfg, ReconnectConfig{MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
			defer closeClient(cl, p)
			const attempts = 5
			for round := range 2 {
				c.conn.Close()
				for range attempts {
					c = p.accept()
					c.expect(proto.CodeHello)
					c.send(tc.abrt)
				}
				c = p.accept()
				c.welcome(uint64(10 + round))
				// The Client's own lines come from its goroutine: wait until
				// the last refusal is in the full log.
				deadline := time.Now().Add(wait)
				for lines("level=") < attempts*(round+1) {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: fewer than %d refusals logged:\n%s", round, attempts*(round+1), logs.String())
					}
					time.Sleep(5 * time.Millisecond)
				}
				if n := lines("level=WARN"); n != round+1 {
					t.Fatalf("round %d: %d WARN lines for %d transient refusals in %d streaks, want %d:\n%s", round, n, attempts*(round+1), round+1, round+1, logs.String())
				}
			}
		})
	}
}
