package client

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Connect keeps what it was given for every later join: the router URLs
// of ReconnectConfig.URLs, and Config's AuthMethods and AuthExtra, as
// they were at the call. It kept the caller's slice (and map), so a
// caller reusing its URL slice after Connect (the next Client's list
// built in it) had this Client redial what it held by then, a dead
// address say, for ever (and the reconnect loop read it racing the
// caller's writes). Each of the three copies is checked: a dead URL, a
// method the realm does not offer, an AuthExtra the Client refuses to
// write ("__proto__"), each written after Connect, fails every join.
func TestClientKeepsItsURLsAsGiven(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	urls := []string{url}
	methods := []string{"anonymous"}
	extra := map[string]any{"device": "d1"}
	sessions := make(chan *Session, 4)
	cl, err := Connect(ctx, Config{Realm: "realm1", Serializer: proto.JSON, AuthMethods: methods, AuthExtra: extra, DialTimeout: time.Second},
		ReconnectConfig{URLs: urls, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, OnSession: func(s *Session) { sessions <- s }})
	noErr(t, "Connect", err)
	defer cl.Close()
	first := <-sessions
	urls[0] = "ws://127.0.0.1:1/ws" // the caller's slice, reused
	methods[0] = "ticket"
	extra["__proto__"] = "x" // a HELLO the Client refuses to write
	other := dialRouter(t, url)
	_, err = other.Call(ctx, "wamp.session.kill", []any{first.ID()}, nil, nil)
	noErr(t, "kill", err)
	select {
	case <-sessions:
	case <-time.After(wait):
		t.Fatal("the Client did not reconnect to its router after the caller reused the slices it gave Connect")
	}
}
