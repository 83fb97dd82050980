package client

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A Client.Call made while the Client reconnects waits for the next
// session, but it waited for more than that: for the router's first
// answer to every registration and subscription being restored, or
// restoreWait (10 s) without one, while a Call made a moment later, once
// the session was installed, went out at once. A router slow to answer
// one restore (busy, a mesh's claim store) held every caller that had
// waited through the reconnect for 10 s, most of them past their
// deadlines. They now get the session as soon as it is installed, as
// later callers do; OnSession still waits for the restores.
func TestClientCallWaitingThroughReconnectNotHeldByRestore(t *testing.T) {
	p := newPeer(t)
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{MinBackoff: 200 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
	defer closeClient(cl, p)
	a := goDo(func() (struct{}, error) {
		return struct{}{}, cl.Subscribe(context.Background(), "com.topic", func(*Event) {}, nil)
	})
	m := c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 5})
	_, err := a.wait(t)
	noErr(t, "Subscribe", err)

	c.conn.Close()
	deadline := time.Now().Add(wait)
	for {
		cl.mu.Lock()
		lost := cl.s == nil
		cl.mu.Unlock()
		if lost {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Client did not notice the loss")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	call := goDo(func() (*Result, error) { return cl.Call(ctx, "com.example.f", nil, nil, nil) })
	c2 := p.accept()
	c2.welcome(2)
	// The restore's SUBSCRIBE, never answered, and the CALL, in either
	// order.
	var callReq uint64
	for range 2 {
		switch got := c2.recv(); got.Type {
		case proto.CodeSubscribe:
		case proto.CodeCall:
			callReq = got.Request
		default:
			t.Fatalf("peer: got %s, want SUBSCRIBE and CALL", got.Type)
		}
	}
	c2.send(&proto.Message{Type: proto.CodeResult, Request: callReq})
	_, err = call.wait(t)
	noErr(t, "Call made while reconnecting", err)
}
