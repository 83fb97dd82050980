package client

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Client.Close called from a handler of the Client's subscriptions or
// registrations returns at once, and the Client stops once the handler
// returns, as from OnSession or OnDisconnect. Since Close waits for the
// handlers a lost session still runs (73f2849), one called from such a
// handler, once its session was lost, waited for itself for ever, the
// Client's goroutine with it (it returned before); one from a live
// session's handler waited for the session's end, which waits for the
// handler.
func TestClientCloseFromHandlerReturns(t *testing.T) {
	for _, c := range []struct {
		name       string
		event, old bool // an event handler; a lost session's
	}{
		{"event/lost", true, true},
		{"invocation/lost", false, true},
		{"event/live", true, false},
		{"invocation/live", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := startRouter(t)
			ctx := context.Background()
			sessions := make(chan *Session, 4)
			lost := make(chan struct{}, 4)
			cl, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack},
				ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
					OnSession: func(s *Session) { sessions <- s }, OnDisconnect: func(error) { lost <- struct{}{} }})
			noErr(t, "Connect", err)
			first := <-sessions
			in, closed := make(chan struct{}), make(chan struct{})
			work := func() {
				close(in)
				if c.old {
					<-lost
				}
				cl.Close()
				close(closed)
			}
			other := dialRouter(t, url)
			if c.event {
				noErr(t, "Subscribe", cl.Subscribe(ctx, "com.t", func(*Event) { work() }, nil))
				noErr(t, "Publish", other.Publish(ctx, "com.t", nil, nil, &PublishOptions{Acknowledge: true}))
			} else {
				noErr(t, "Register", cl.Register(ctx, "com.p", func(context.Context, *Invocation) (*Result, error) {
					work()
					return &Result{}, nil
				}, nil))
				go other.Call(ctx, "com.p", nil, nil, nil)
			}
			select {
			case <-in:
			case <-time.After(wait):
				t.Fatal("handler not started")
			}
			if c.old {
				_, err := other.Call(ctx, "wamp.session.kill", []any{first.ID()}, nil, nil)
				noErr(t, "kill", err)
			}
			select {
			case <-closed:
			case <-time.After(wait):
				t.Fatal("Client.Close from the handler did not return")
			}
			if _, err := cl.Session(ctx); err != ErrClosed {
				t.Fatalf("Session after Close = %v, want ErrClosed", err)
			}
			done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
			if _, err := done.wait(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Client.Close from a handler subscribed or registered on the Client's
// session itself (from OnSession, through the Session) returns at once
// too: ending the session waits for that handler as well, and Close,
// which looked for the handlers of the Client's own subscriptions and
// registrations only, waited for itself for ever.
func TestClientCloseFromSessionHandlerReturns(t *testing.T) {
	for _, event := range []bool{true, false} {
		name := map[bool]string{true: "event", false: "invocation"}[event]
		t.Run(name, func(t *testing.T) {
			url := startRouter(t)
			ctx := context.Background()
			var cl *Client
			ready := make(chan struct{})
			made := make(chan error, 1)
			in, closed := make(chan struct{}), make(chan struct{})
			work := func() {
				close(in)
				cl.Close()
				close(closed)
			}
			cl, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack},
				ReconnectConfig{OnSession: func(s *Session) {
					<-ready
					var err error
					if event {
						_, err = s.Subscribe(ctx, "com.t", func(*Event) { work() }, nil)
					} else {
						_, err = s.Register(ctx, "com.p", func(context.Context, *Invocation) (*Result, error) {
							work()
							return &Result{}, nil
						}, nil)
					}
					made <- err
				}})
			noErr(t, "Connect", err)
			close(ready)
			noErr(t, "Subscribe or Register", <-made)
			other := dialRouter(t, url)
			if event {
				noErr(t, "Publish", other.Publish(ctx, "com.t", nil, nil, &PublishOptions{Acknowledge: true}))
			} else {
				go other.Call(ctx, "com.p", nil, nil, nil)
			}
			select {
			case <-in:
			case <-time.After(wait):
				t.Fatal("handler not started")
			}
			select {
			case <-closed:
			case <-time.After(wait):
				t.Fatal("Client.Close from a handler made on the Client's session did not return")
			}
			done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
			if _, err := done.wait(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}
