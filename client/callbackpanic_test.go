package client

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// ReconnectConfig.OnSession and OnDisconnect run on the Client's own
// goroutine. A panic in either went up that goroutine, which nothing
// recovers, and took the whole program down (as Config.OnChallenge's did
// under Connect before 4aa5056): a Go program embedding the client died of
// a bug in a logging callback. The panic is recovered and logged, and the
// Client goes on: the session OnSession was given serves calls, and after
// a loss whose OnDisconnect panicked the Client dials again.
func TestClientCallbackPanicRecovered(t *testing.T) {
	p := newPeer(t)
	sessions, disconnects := make(chan *Session, 4), make(chan error, 4)
	rc := ReconnectConfig{
		OnSession: func(s *Session) {
			sessions <- s
			panic("OnSession bug")
		},
		OnDisconnect: func(err error) {
			disconnects <- err
			panic(errors.New("OnDisconnect bug"))
		},
	}
	var logs lockedBuf
	cfg := clientCfg(p)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))
	cl, c := connectPeer(t, p, cfg, rc)
	defer closeClient(cl, p)
	<-sessions

	// The session OnSession panicked on still serves the Client.
	call := goDo(func() (*Result, error) { return cl.Call(context.Background(), "com.example.f", nil, nil, nil) })
	m := c.expect(proto.CodeCall)
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request})
	_, err := call.wait(t)
	noErr(t, "Call after a panicking OnSession", err)

	// A loss whose OnDisconnect panics is followed by a new session.
	c.conn.Close()
	c = p.accept()
	c.welcome(2)
	select {
	case <-disconnects:
	default:
		t.Fatal("OnDisconnect not called before the next session")
	}
	<-sessions
	call = goDo(func() (*Result, error) { return cl.Call(context.Background(), "com.example.f", nil, nil, nil) })
	m = c.expect(proto.CodeCall)
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request})
	_, err = call.wait(t)
	noErr(t, "Call on the session after a panicking OnDisconnect", err)
	for _, want := range []string{"OnSession panicked", "OnSession bug", "OnDisconnect panicked", "OnDisconnect bug"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("no %q in the ERROR log:\n%s", want, logs.String())
		}
	}
}
