package client

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Client.Close called from a handler of another session (an
// application's Session, another Client's subscription) waits, as from
// outside any handler, for the Client's session to be ended (GOODBYE):
// that handler is none the Client waits for. It returned at once (any
// handler's frame on the stack was taken for one of the Client's), its
// session still open, so that a Close(); os.Exit(0) there cut the
// GOODBYE. The other session goes on serving.
func TestClientCloseFromOtherSessionsHandlerWaits(t *testing.T) {
	for _, c := range []struct {
		name   string
		event  bool
		client bool // the handler is another Client's
	}{
		{"session/event", true, false},
		{"session/invocation", false, false},
		{"client/event", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := startRouter(t)
			ctx := context.Background()
			sessions := make(chan *Session, 4)
			cl, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.JSON},
				ReconnectConfig{OnSession: func(s *Session) { sessions <- s }})
			noErr(t, "Connect", err)
			first := <-sessions
			openAfter := make(chan bool, 1)
			work := func() {
				cl.Close()
				openAfter <- first.Err() == nil
			}
			other := dialRouter(t, url)
			switch {
			case c.client:
				b, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack}, ReconnectConfig{})
				noErr(t, "Connect b", err)
				t.Cleanup(func() { b.Close() })
				noErr(t, "Subscribe", b.Subscribe(ctx, "com.t", func(*Event) { work() }, nil))
				noErr(t, "Publish", other.Publish(ctx, "com.t", nil, nil, &PublishOptions{Acknowledge: true}))
			case c.event:
				_, err := other.Subscribe(ctx, "com.t", func(*Event) { work() }, nil)
				noErr(t, "Subscribe", err)
				noErr(t, "Publish", first.Publish(ctx, "com.t", nil, nil, &PublishOptions{Acknowledge: true}))
			default:
				_, err := other.Register(ctx, "com.p", func(context.Context, *Invocation) (*Result, error) {
					work()
					return &Result{}, nil
				}, nil)
				noErr(t, "Register", err)
				go first.Call(ctx, "com.p", nil, nil, nil)
			}
			select {
			case open := <-openAfter:
				if open {
					t.Fatal("Client.Close from another session's handler returned with the Client's session still open")
				}
			case <-time.After(wait):
				t.Fatal("Client.Close from another session's handler did not return")
			}
			// The other session still serves.
			if _, err := other.Call(ctx, "wamp.session.count", nil, nil, nil); err != nil {
				t.Fatalf("the other session after the handler's Close: %v", err)
			}
		})
	}
}

// Client.Close from an invocation Handler of the Client's own session (a
// registration of the Client's, or one made on its session from
// OnSession) returns once the session's GOODBYE has been answered, without
// waiting for that Handler (the session's end would wait for it: Close
// waited for itself), and without the end waiting for it either (its wait
// for running Handlers, closeHandlerWait, before the GOODBYE). It returned
// at once, the GOODBYE not yet sent, so that a Close(); os.Exit(0) there
// cut it.
func TestClientCloseFromOwnInvocationHandlerSaysGoodbye(t *testing.T) {
	for _, viaSession := range []bool{false, true} {
		name := map[bool]string{false: "client", true: "session"}[viaSession]
		t.Run(name, func(t *testing.T) {
			url := startRouter(t)
			ctx := context.Background()
			var cl *Client
			var first atomic.Pointer[Session]
			goodbye := make(chan struct{}) // the router's GOODBYE came
			type after struct {
				goodbye, ended bool
				took           time.Duration
			}
			closed := make(chan after, 1)
			h := func(context.Context, *Invocation) (*Result, error) {
				start := time.Now()
				cl.Close()
				a := after{took: time.Since(start)}
				a.ended = first.Load().Err() != nil
				select {
				case <-goodbye:
					a.goodbye = true
				default:
				}
				closed <- a
				return &Result{}, nil
			}
			sessions := make(chan *Session, 4)
			made := make(chan error, 1)
			cl, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack},
				ReconnectConfig{OnSession: func(s *Session) {
					s.OnMessage(func(m *proto.Message) {
						if m.Type == proto.CodeGoodbye {
							close(goodbye)
						}
					})
					first.Store(s)
					sessions <- s
					if viaSession {
						_, err := s.Register(ctx, "com.p", h, nil)
						made <- err
					}
				}})
			noErr(t, "Connect", err)
			<-sessions
			if viaSession {
				noErr(t, "Register", <-made)
			} else {
				noErr(t, "Register", cl.Register(ctx, "com.p", h, nil))
			}
			other := dialRouter(t, url)
			go other.Call(ctx, "com.p", nil, nil, nil)
			var a after
			select {
			case a = <-closed:
			case <-time.After(wait):
				t.Fatal("Client.Close from the Client's own invocation Handler did not return")
			}
			if !a.goodbye || !a.ended {
				t.Fatalf("Client.Close from the Client's own invocation Handler returned before the GOODBYE exchange (router's GOODBYE seen %v, session ended %v)", a.goodbye, a.ended)
			}
			if a.took >= closeHandlerWait {
				t.Fatalf("Client.Close from the Client's own invocation Handler took %v: the GOODBYE waited for the Handler (closeHandlerWait %v)", a.took, closeHandlerWait)
			}
			done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
			if _, err := done.wait(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}
