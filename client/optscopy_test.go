package client

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A Client keeps what a Register or Subscribe asked for, to make it again
// on every later session: the options as they were at the call. It kept
// the caller's *RegisterOptions and *SubscribeOptions (and their Options
// maps), and a caller reusing one options value for its next call (the
// match policy changed between two Registers) had every earlier one
// restored, after a reconnection, with the options of the last: an exact
// registration came back as a prefix one, and an exact subscription too,
// with no error anywhere. (A change made while a restore read them raced
// it.)
func TestClientRestoresOptionsAsGiven(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	sessions := make(chan *Session, 4)
	cl, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack},
		ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, OnSession: func(s *Session) { sessions <- s }})
	noErr(t, "Connect", err)
	defer cl.Close()
	first := <-sessions
	h := func(context.Context, *Invocation) (*Result, error) { return &Result{}, nil }
	ropts := &RegisterOptions{Options: map[string]any{"disclose_caller": true}}
	noErr(t, "Register com.exact", cl.Register(ctx, "com.exact", h, ropts))
	ropts.Match = "prefix"
	ropts.Options["match"] = "prefix"
	noErr(t, "Register com.prefix", cl.Register(ctx, "com.prefix", h, ropts))
	sopts := &SubscribeOptions{}
	noErr(t, "Subscribe com.exact", cl.Subscribe(ctx, "com.exact", func(*Event) {}, sopts))
	sopts.Match = "prefix"
	noErr(t, "Subscribe com.prefix", cl.Subscribe(ctx, "com.prefix", func(*Event) {}, sopts))

	other := dialRouter(t, url)
	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			meta, uri, match string
			want             bool
		}{
			{"wamp.registration.lookup", "com.exact", "exact", true},
			{"wamp.registration.lookup", "com.exact", "prefix", false},
			{"wamp.registration.lookup", "com.prefix", "prefix", true},
			{"wamp.subscription.lookup", "com.exact", "exact", true},
			{"wamp.subscription.lookup", "com.exact", "prefix", false},
			{"wamp.subscription.lookup", "com.prefix", "prefix", true},
		} {
			res, err := other.Call(ctx, c.meta, []any{c.uri, map[string]any{"match": c.match}}, nil, nil)
			noErr(t, c.meta, err)
			if got := len(res.Args) > 0 && res.Args[0] != nil; got != c.want {
				t.Errorf("%s: %s of %s (%s): found %v, want %v", when, c.meta, c.uri, c.match, got, c.want)
			}
		}
	}
	check("first session")
	_, err = other.Call(ctx, "wamp.session.kill", []any{first.ID()}, nil, nil)
	noErr(t, "kill", err)
	select {
	case <-sessions:
	case <-time.After(wait):
		t.Fatal("no new session")
	}
	check("after the reconnection")
}
