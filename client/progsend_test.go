package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A ProgressiveCall.Send waiting for the write lock behind a stuck write
// (a router not reading) while the router answers the call writes
// nothing once it has the lock: the call has ended, and a chunk under its
// id could be taken for a new call. Send checked whether the call had
// ended before it waited, not after, and wrote the chunk.
func TestProgressiveSendAfterCallEndedBehindStuckWrite(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) { cfg.WriteTimeout = 3 * time.Second })
	p, err := s.CallProgressive(context.Background(), "com.example.p", nil)
	noErr(t, "CallProgressive", err)
	noErr(t, "Send", p.Send([]any{0}, nil, false))
	if m := c.expect(proto.CodeCall); m.Request != p.ID() {
		t.Fatalf("CALL %d, want %d", m.Request, p.ID())
	}
	stuckWriter(t, s)
	sent := goDo(func() (struct{}, error) { return struct{}{}, p.Send([]any{1}, nil, false) })
	time.Sleep(50 * time.Millisecond) // Send waits for the write lock
	c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: p.ID(), Dict: c.raw(map[string]any{}), URI: []byte("com.example.refused")})
	for deadline := time.Now().Add(wait); p.ended() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the client never had the call's ERROR")
		}
	}
	// The peer reads again: the stuck writes go through, and Send's.
	var chunks int
	var doneAt time.Time
	for doneAt.IsZero() || time.Since(doneAt) < 100*time.Millisecond {
		if doneAt.IsZero() && !sent.pending(0) {
			doneAt = time.Now()
		}
		c.conn.SetReadDeadline(time.Now().Add(wait))
		b, err := c.readFrame()
		if err != nil {
			t.Fatalf("peer: read: %v", err)
		}
		var m proto.Message
		noErr(t, "decode", c.dec.Decode(c.ser, b, &m))
		if m.Type == proto.CodeCall && m.Request == p.ID() {
			chunks++
		}
	}
	if _, err := sent.wait(t); !errors.Is(err, ErrCallDone) || chunks != 0 {
		t.Errorf("Send after the call's ERROR: %v, %d chunks written under the ended call's id; want ErrCallDone and none", err, chunks)
	}
	c.conn.Close() // ends the stuck writer and the session
	<-s.Done()
}
