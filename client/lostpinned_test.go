package client

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/edgewamp/edgewamp/proto"
)

// A lost session is not kept reachable by the Client's record of a
// registration or subscription the next session did not take back (a
// restore refused for good, or still refused: another session holds the
// procedure): the record pointed at the lost session's Registration or
// Subscription for as long as that lasted, and so kept the whole lost
// session, its write buffer and read buffer (up to 4 MiB each), its event
// queue and transport, for good.
func TestClientKeepsNoLostSession(t *testing.T) {
	p := newPeer(t)
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	defer closeClient(cl, p)
	ctx := context.Background()
	a := goDo(func() (struct{}, error) {
		return struct{}{}, cl.Register(ctx, "com.proc", func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
	})
	m := c.expect(proto.CodeRegister)
	c.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: 7})
	_, err := a.wait(t)
	noErr(t, "Register", err)
	a = goDo(func() (struct{}, error) { return struct{}{}, cl.Subscribe(ctx, "com.topic", func(*Event) {}, nil) })
	m = c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 8})
	_, err = a.wait(t)
	noErr(t, "Subscribe", err)
	// A large message out: the session keeps its 3 MiB write buffer.
	noErr(t, "Publish", cl.Publish(ctx, "com.big", []any{strings.Repeat("x", 3<<20)}, nil, nil))
	c.expect(proto.CodePublish)
	first, err := cl.Session(ctx)
	noErr(t, "Session", err)
	lost := weak.Make(first)
	first = nil
	c.conn.Close()
	// The next session refuses both restores for good.
	c2 := p.accept()
	c2.welcome(2)
	for range 2 {
		m := c2.recv()
		c2.send(&proto.Message{Type: proto.CodeError, ReqType: m.Type, Request: m.Request, URI: []byte(proto.URINotAuthorized)})
	}
	deadline := time.Now().Add(wait)
	for lost.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the lost session is still reachable 5 s after the next session refused its restores")
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
}
