package client

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A session lost while its restores are out is not given to OnSession:
// the Client's goroutine waited for the restores' first answers, which
// the loss gave (each failing with the session's end), then called
// OnSession with the dead session, its Done already closed, and then
// OnDisconnect. OnDisconnect is still called for it, and the next
// session is given to OnSession.
func TestClientNoOnSessionForLostSession(t *testing.T) {
	p := newPeer(t)
	type given struct {
		id   uint64
		dead bool
	}
	got := make(chan given, 8)
	disc := make(chan error, 8)
	rc := ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnSession:    func(s *Session) { got <- given{s.ID(), doneClosed(s)} },
		OnDisconnect: func(err error) { disc <- err }}
	cl, c := connectPeer(t, p, clientCfg(p), rc)
	defer closeClient(cl, p)
	if g := <-got; g.id != 1 {
		t.Fatalf("OnSession given session %d first, want 1", g.id)
	}
	a := goDo(func() (struct{}, error) {
		return struct{}{}, cl.Subscribe(context.Background(), "com.topic", func(*Event) {}, nil)
	})
	m := c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 5})
	_, err := a.wait(t)
	noErr(t, "Subscribe", err)
	c.conn.Close()

	c2 := p.accept()
	c2.welcome(2)
	c2.expect(proto.CodeSubscribe) // the restore, never answered
	c2.conn.Close()                // session 2 lost while its restore is out

	c3 := p.accept()
	c3.welcome(3)
	m = c3.expect(proto.CodeSubscribe)
	c3.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 5})
	select {
	case g := <-got:
		if g.id != 3 || g.dead {
			t.Fatalf("OnSession given session %d (ended: %v) after session 1, want session 3 alive: session 2 was lost during its restores", g.id, g.dead)
		}
	case <-time.After(wait):
		t.Fatal("OnSession not called for session 3")
	}
	for i := range 2 {
		select {
		case <-disc:
		case <-time.After(wait):
			t.Fatalf("OnDisconnect called %d times, want 2 (sessions 1 and 2)", i)
		}
	}
}
