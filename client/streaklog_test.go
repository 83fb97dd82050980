package client

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A Client reconnecting through a lockout (edgewamp's ABORT
// wamp.error.authentication_denied "too many failed authentications from
// this address; try again later", for limits.auth_failures.lockout: 5 min
// by default) logged a WARN line at each attempt; and a router that
// answers every AUTHENTICATE with another CHALLENGE (the join aborted at
// the fifth, a441a0d), or otherwise breaks the protocol in the join, was
// logged at INFO only ("connecting failed", as a router restarting), at
// each attempt. Both are logged at WARN the first time in a streak
// (until a session is joined), at INFO while the same repeats, as the
// router's shutdown and "router busy" refusals are (5b8c2ab).
func TestClientRepeatedJoinFailureWarnedOncePerStreak(t *testing.T) {
	lockout := &proto.Message{Type: proto.CodeAbort, URI: []byte(proto.URIAuthenticationDenied)}
	lockout.Opt.SetString(proto.KeyMessage, "too many failed authentications from this address; try again later")
	for _, tc := range []struct {
		name   string
		line   string // what the Client's lines of the failure hold
		router func(c *peerConn)
	}{
		{"lockout", "refused the join", func(c *peerConn) {
			c.expect(proto.CodeHello)
			c.send(lockout)
		}},
		{"fifth challenge", "more than 4 CHALLENGEs", func(c *peerConn) {
			c.expect(proto.CodeHello)
			for range maxChallengeRounds {
				c.send(&proto.Message{Type: proto.CodeChallenge, URI: []byte("ticket")})
				c.expect(proto.CodeAuthenticate)
			}
			c.send(&proto.Message{Type: proto.CodeChallenge, URI: []byte("ticket")})
			c.expect(proto.CodeAbort)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t)
			var logs lockedBuf
			cfg := clientCfg(p)
			cfg.AuthMethods = []string{"ticket"}
			cfg.OnChallenge = func(string, map[string]any) (string, map[string]any, error) { return "secret", nil, nil }
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			lines := func(level string) (n int) {
				for l := range strings.Lines(logs.String()) {
					if strings.Contains(l, tc.line) && strings.Contains(l, level) {
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
					tc.router(c)
				}
				c = p.accept()
				c.welcome(uint64(10 + round))
				deadline := time.Now().Add(wait)
				for lines("level=") < attempts*(round+1) {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: fewer than %d failures logged:\n%s", round, attempts*(round+1), logs.String())
					}
					time.Sleep(5 * time.Millisecond)
				}
				if n := lines("level=WARN"); n != round+1 {
					t.Fatalf("round %d: %d WARN lines for %d failures in %d streaks, want %d:\n%s", round, n, attempts*(round+1), round+1, round+1, logs.String())
				}
			}
		})
	}
}
