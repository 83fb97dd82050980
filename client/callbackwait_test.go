package client

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A request of a Client's own from its OnDisconnect callback (a status
// Publish, say) cannot wait for the next session: the Client's goroutine,
// which runs the callback, is the one that would dial it. It fails at once
// with ErrInCallback, and the Client reconnects. Before, it waited for
// ever (a context without deadline): the Client never dialed again, and a
// Close from another goroutine hung with it. A request the callback waits
// for on another goroutine still waits for the next session, and Close
// ends it (ErrClosed) and returns.
func TestClientRequestFromCallbackDoesNotHang(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	other := dialRouter(t, url)
	sessions := make(chan *Session, 8)
	direct := make(chan error, 8)
	var cl *Client
	cl, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.JSON},
		ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			OnSession: func(s *Session) { sessions <- s },
			OnDisconnect: func(error) {
				direct <- cl.Publish(context.Background(), "com.status", []any{"offline"}, nil, nil)
			}})
	noErr(t, "Connect", err)
	kill := func(s *Session) {
		t.Helper()
		_, err := other.Call(ctx, "wamp.session.kill", []any{s.ID()}, nil, nil)
		noErr(t, "kill", err)
	}
	kill(<-sessions)
	select {
	case err := <-direct:
		if !errors.Is(err, ErrInCallback) {
			t.Fatalf("Publish from OnDisconnect: %v, want ErrInCallback", err)
		}
	case <-time.After(wait):
		t.Fatal("Publish from OnDisconnect still waits: the Client cannot dial the session it waits for")
	}
	select {
	case <-sessions:
	case <-time.After(wait):
		t.Fatal("the Client did not reconnect after a request from OnDisconnect")
	}
	noErr(t, "Close", cl.Close())

	// OnDisconnect waits for a goroutine's Publish: nothing tells it
	// apart from any other waiter; Close ends the wait.
	waiting := make(chan struct{})
	viaGoroutine := make(chan error, 1)
	cl, err = Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.JSON},
		ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			OnSession: func(s *Session) { sessions <- s },
			OnDisconnect: func(error) {
				done := make(chan struct{})
				go func() {
					defer close(done)
					viaGoroutine <- cl.Publish(context.Background(), "com.status", []any{"offline"}, nil, nil)
				}()
				close(waiting)
				<-done
			}})
	noErr(t, "Connect", err)
	kill(<-sessions)
	select {
	case <-waiting:
	case <-time.After(wait):
		t.Fatal("OnDisconnect not called")
	}
	// Close once the Publish waits for a session (a Close before it
	// refuses it at once).
	for deadline := time.Now().Add(wait); !waitingForSession(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the Publish waited for by OnDisconnect does not wait for a session")
		}
	}
	closed := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
	if _, err := closed.wait(t); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-viaGoroutine; !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish waited for by OnDisconnect: %v, want ErrClosed", err)
	}
}

// waitingForSession reports whether a goroutine waits in Client.Session.
func waitingForSession() bool {
	buf := make([]byte, 1<<20)
	return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("client.(*Client).Session("))
}

// One Client's callback may use another Client: A's OnDisconnect
// publishing A's loss through B, say, as the router's restart takes B's
// session too and B's own OnDisconnect still runs. A's callback is not
// B's: B's Publish waits for B's next session (bounded by its context)
// and goes out on it, and B.Close from it waits for B's goroutine. The
// Client told its callbacks apart from others by the callback's frame
// in the stack, the same for every Client: B's request failed with
// ErrInCallback, and B.Close returned at once, while B's callback ran.
func TestClientRequestFromAnotherClientsCallbackWaits(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	other := dialRouter(t, url)
	bIn, release := make(chan struct{}), make(chan struct{})
	bSessions := make(chan *Session, 4)
	b, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.JSON},
		ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			OnSession:    func(s *Session) { bSessions <- s },
			OnDisconnect: func(error) { close(bIn); <-release }})
	noErr(t, "Connect B", err)
	defer b.Close()
	aSessions := make(chan *Session, 4)
	published := make(chan error, 1)
	a, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.JSON},
		ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			OnSession: func(s *Session) { aSessions <- s },
			OnDisconnect: func(error) {
				<-bIn // B's own callback runs, B has no session
				pctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				published <- b.Publish(pctx, "com.status", []any{"a lost"}, nil, &PublishOptions{Acknowledge: true})
			}})
	noErr(t, "Connect A", err)
	defer a.Close()
	free := sync.OnceFunc(func() { close(release) })
	defer free() // first: B's Close waits for its OnDisconnect
	for _, s := range []*Session{<-bSessions, <-aSessions} {
		_, err := other.Call(ctx, "wamp.session.kill", []any{s.ID()}, nil, nil)
		noErr(t, "kill", err)
	}
	for deadline := time.Now().Add(wait); !waitingForSession(); time.Sleep(time.Millisecond) {
		select {
		case err := <-published:
			t.Fatalf("B's Publish from A's OnDisconnect, while B's own callback runs: %v at once, want it to wait for B's next session", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("B's Publish from A's OnDisconnect does not wait for B's next session")
		}
	}
	free()
	select {
	case err := <-published:
		noErr(t, "B's Publish on its next session", err)
	case <-time.After(2 * wait):
		t.Fatal("B's Publish from A's OnDisconnect never went out")
	}
}
