package client

import (
	"context"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A WELCOME's session id must be in [1, 2^53] (WAMP §IDs). One past 2^53
// is refused by the decoder; 0, a valid encoding of an id, was accepted,
// and the session ran with an id no router gives (ID() 0, which callers
// take for "none"). The join is aborted: protocol_violation, naming it.
func TestWelcomeSessionIDZeroRefused(t *testing.T) {
	p := newPeer(t)
	cfg := Config{URL: p.url("rs"), Realm: "realm1", Serializer: proto.JSON, DialTimeout: wait, ReplyTimeout: wait}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	c.welcome(0)
	s, err := a.wait(t)
	if err == nil {
		t.Cleanup(func() { closeSession(t, s, c) })
		t.Fatalf("Dial joined a session with id %d", s.ID())
	}
	if !strings.Contains(err.Error(), "session id") {
		t.Errorf("Dial's error %q does not name the session id", err)
	}
	ab := c.expect(proto.CodeAbort)
	eq(t, "ABORT reason", string(ab.URI), proto.URIProtocolViolation)
	c.expectEOF()
}

// One past 2^53 is the decoder's to refuse: the join fails, ABORTed.
func TestWelcomeSessionIDPast53Refused(t *testing.T) {
	p := newPeer(t)
	cfg := Config{URL: p.url("rs"), Realm: "realm1", Serializer: proto.JSON, DialTimeout: wait, ReplyTimeout: wait}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	c.expect(proto.CodeHello)
	if err := c.writeRS(rsFrameMessage, []byte(`[2,9007199254740993,{}]`)); err != nil {
		t.Fatal(err)
	}
	if s, err := a.wait(t); err == nil {
		t.Cleanup(func() { closeSession(t, s, c) })
		t.Fatalf("Dial joined a session with id %d", s.ID())
	}
	ab := c.expect(proto.CodeAbort)
	eq(t, "ABORT reason", string(ab.URI), proto.URIProtocolViolation)
}
