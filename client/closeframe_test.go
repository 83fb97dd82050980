package client

import (
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/edgewamp/edgewamp/proto"
)

// Close on a WebSocket whose router reads the GOODBYE but never answers
// it ends the connection with a close frame (1000), as it did before
// fef66f7: its guard that ends the session at ReplyTimeout (for a
// GOODBYE whose write is stuck) stayed armed after the GOODBYE was
// written, and at ReplyTimeout it raced Close's own graceful end and
// mostly won it, closing the TCP connection without a close frame.
func TestCloseUnansweredSendsCloseFrame(t *testing.T) {
	const rounds = 10
	closed := 0
	for range rounds {
		s, c := setup(t, "ws", proto.JSON, func(cfg *Config) { cfg.ReplyTimeout = 50 * time.Millisecond })
		done := goDo(func() (struct{}, error) { return struct{}{}, s.Close() })
		c.expect(proto.CodeGoodbye) // never answered
		c.conn.SetReadDeadline(time.Now().Add(wait))
	read:
		for {
			msgs, err := wsutil.ReadClientMessage(c.br, nil)
			for _, m := range msgs {
				if m.OpCode == ws.OpClose {
					closed++
					break read
				}
			}
			if err != nil {
				break
			}
		}
		done.wait(t)
		eq(t, "Err", s.Err(), ErrClosed)
	}
	if closed != rounds {
		t.Errorf("%d of %d unanswered Closes sent a WebSocket close frame, want all", closed, rounds)
	}
}
