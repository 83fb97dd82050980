package client

import (
	"context"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A WELCOME's Details are kept for the session's life (Session.Details),
// and a join's ABORT as a Client's last error until the next one. Both
// were decoded within the budget of their own size (DecodeRatio times it,
// plus 64 KiB): a hostile router's 200 KB WELCOME of small MsgPack integers
// had the session keep 3.2 MB of Go values for its whole life (256 MiB
// from a 16 MiB one, beyond every bound the client keeps), where a
// router's WELCOME takes a few KiB. They are decoded within
// maxControlDetails (1 MiB decoded): over it they are left out (nil), as
// Details over their budget are.
func TestWelcomeDetailsBounded(t *testing.T) {
	const n = 200_000
	p := newPeer(t)
	cfg := Config{URL: p.url("rs"), Realm: "realm1", Serializer: proto.MsgPack, DialTimeout: wait, ReplyTimeout: wait}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	c.expect(proto.CodeHello)
	pad := make([]any, n)
	for i := range pad {
		pad[i] = i % 100
	}
	w := &proto.Message{Type: proto.CodeWelcome, ID: 5}
	w.Dict = c.raw(map[string]any{"authid": "anon", "pad": pad})
	c.send(w)
	s, err := a.wait(t)
	noErr(t, "Dial", err)
	t.Cleanup(func() { closeSession(t, s, c) })
	if held, ok := s.Details()["pad"].([]any); ok {
		t.Fatalf("the session keeps a WELCOME's %d-entry list (%d bytes decoded, by the decode budget's estimate) for its life", len(held), 16*len(held))
	}
}
