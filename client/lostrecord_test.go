package client

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/edgewamp/edgewamp/proto"
)

// A Register (or restore) whose answer came just before its session was
// lost, and which records it only after the Client cleared its records of
// that session (9334c3b), does not record the lost session's
// registration: it did, and so kept the whole lost session reachable
// once the next session refused the restore, as 9334c3b's test case; a
// late record could also overwrite the next session's registration, which
// Client.Unregister then never took off.
func TestClientRecordsNothingOfLostSession(t *testing.T) {
	h := func(context.Context, *Invocation) (*Result, error) { return nil, nil }
	for _, tc := range []struct {
		name     string
		req, ack proto.Code
		do       func(*Client) error
	}{
		{"Register", proto.CodeRegister, proto.CodeRegistered, func(cl *Client) error { return cl.Register(context.Background(), "com.proc", h, nil) }},
		{"Subscribe", proto.CodeSubscribe, proto.CodeSubscribed, func(cl *Client) error { return cl.Subscribe(context.Background(), "com.topic", func(*Event) {}, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) { recordsNoneOfLostSession(t, tc.req, tc.ack, tc.do) })
	}
}

func recordsNoneOfLostSession(t *testing.T, req, ack proto.Code, do func(*Client) error) {
	p := newPeer(t)
	disconnected := make(chan struct{})
	var once sync.Once
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		OnDisconnect: func(error) { once.Do(func() { close(disconnected) }) }})
	defer closeClient(cl, p)
	ctx := context.Background()
	first, err := cl.Session(ctx)
	noErr(t, "Session", err)
	lost := weak.Make(first)
	first = nil
	in := make(chan struct{})
	hook := func() {
		close(in)
		<-disconnected // the Client has cleared its records of the lost session
	}
	recordHook.Store(&hook)
	t.Cleanup(func() { recordHook.Store(nil) })
	a := goDo(func() (struct{}, error) { return struct{}{}, do(cl) })
	m := c.expect(req)
	c.send(&proto.Message{Type: ack, Request: m.Request, ID: 7})
	select {
	case <-in:
	case <-time.After(wait):
		t.Fatal("the request did not reach its record")
	}
	c.conn.Close()
	_, err = a.wait(t)
	noErr(t, "the request", err)
	recordHook.Store(nil)
	// The next session refuses the restore for good.
	c2 := p.accept()
	c2.welcome(2)
	m = c2.expect(req)
	c2.send(&proto.Message{Type: proto.CodeError, ReqType: m.Type, Request: m.Request, URI: []byte(proto.URINotAuthorized)})
	deadline := time.Now().Add(wait)
	for lost.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the lost session is still reachable 5 s after the next session refused the restore")
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
}
