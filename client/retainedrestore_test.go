package client

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A Client subscription with GetRetained is restored on every new session
// with get_retained, so that a retained event published while no session
// was up (a changed state) is delivered; the retained event its handler
// already had is not delivered again: it was, at every reconnection, and
// a handler saw the same event once per network blip.
func TestClientRetainedNotReplayedOnReconnect(t *testing.T) {
	for _, match := range []string{"exact", "prefix"} {
		t.Run(match, func(t *testing.T) { testRetainedNotReplayed(t, match) })
	}
}

func testRetainedNotReplayed(t *testing.T, match string) {
	url := startRouter(t)
	ctx := context.Background()
	other := dialRouter(t, url)
	pub := func(v string, retain bool) {
		t.Helper()
		noErr(t, "Publish "+v, other.Publish(ctx, "com.state", []any{v}, nil, &PublishOptions{Acknowledge: true, Retain: retain}))
	}
	pub("one", true)

	sessions := make(chan *Session, 4)
	var onLost atomic.Pointer[func()]
	cl, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack},
		ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			OnSession: func(s *Session) { sessions <- s },
			OnDisconnect: func(error) {
				if f := onLost.Load(); f != nil {
					(*f)()
				}
			}})
	noErr(t, "Connect", err)
	defer cl.Close()
	first := <-sessions
	events := make(chan *Event, 16)
	noErr(t, "Subscribe", cl.Subscribe(ctx, "com.state", func(ev *Event) { events <- ev }, &SubscribeOptions{Match: match, GetRetained: true}))
	next := func(want string, retained bool) {
		t.Helper()
		select {
		case ev := <-events:
			if len(ev.Args) != 1 || ev.Args[0] != want || ev.Retained != retained {
				t.Fatalf("event %v (retained %v), want %q (retained %v)", ev.Args, ev.Retained, want, retained)
			}
		case <-time.After(wait):
			t.Fatalf("no event %q", want)
		}
	}
	next("one", true)
	reconnect := func(s *Session) *Session {
		t.Helper()
		_, err := other.Call(ctx, "wamp.session.kill", []any{s.ID()}, nil, nil)
		noErr(t, "kill", err)
		select {
		case s = <-sessions:
		case <-time.After(wait):
			t.Fatal("no new session")
		}
		return s
	}
	// The same retained event: not again. A live marker published once
	// the restore is answered (OnSession) comes after any retained event.
	second := reconnect(first)
	pub("marker", false)
	next("marker", false)
	// A live event seen, then retained by its publisher: not again either.
	pub("two", true)
	next("two", false)
	third := reconnect(second)
	pub("marker", false)
	next("marker", false)
	// A retained event published while no session was up: delivered.
	three := func() { pub("three", true) }
	onLost.Store(&three)
	reconnect(third)
	next("three", true)
	pub("marker", false)
	next("marker", false)
}
