package client

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// startCRARouter starts a real router whose realm1 takes WAMP-CRA logins
// only (alice), and returns its WebSocket URL and engine.
func startCRARouter(t *testing.T) (string, *loop.Engine) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	users, err := route.NewUsers([]*route.User{{AuthID: "alice", Roles: []string{"user"}, Secret: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1", Users: users,
		Authenticators: []route.Authenticator{&route.CRAAuth{Users: users}}}},
		Shards: 1, HelloTimeout: time.Hour, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		eng.Shutdown(ctx)
	})
	return "ws://" + eng.Addrs()[0].String() + "/ws", eng
}

// A panic in Config.OnChallenge fails the join with an error and closes
// the connection. Before, it went up through Dial with the socket open
// (held by the router, waiting for AUTHENTICATE up to hello_timeout, and
// by the client until a GC), and under Connect it crashed the program on
// the Client's goroutine.
func TestOnChallengePanicClosesTheConnection(t *testing.T) {
	url, eng := startCRARouter(t)
	panicky := func(string, map[string]any) (string, map[string]any, error) {
		panic("OnChallenge bug")
	}
	cfg := Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, AuthID: "alice",
		AuthMethods: []string{"wampcra"}, OnChallenge: panicky, DialTimeout: 5 * time.Second}

	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("Dial panicked: %v", p)
			}
		}()
		var s *Session
		s, err = Dial(context.Background(), cfg)
		if s != nil {
			s.Close()
		}
	}()
	if err == nil || !strings.Contains(err.Error(), "OnChallenge bug") {
		t.Errorf("Dial: %v, want an error naming the panic", err)
	}
	waitUntil(t, "the router's connection closed", func() bool {
		held, _, _ := eng.FDs()
		return held == 0
	})
}

// Under Connect, a panicking Config.OnChallenge is a failed attempt like
// an error from it: Connect gives up at its context's end with the panic as
// the last error, and every attempt's connection is closed. Before, the
// panic crashed the program on the Client's goroutine.
func TestOnChallengePanicUnderConnect(t *testing.T) {
	url, eng := startCRARouter(t)
	panicky := func(string, map[string]any) (string, map[string]any, error) {
		panic("OnChallenge bug")
	}
	cfg := Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, AuthID: "alice",
		AuthMethods: []string{"wampcra"}, OnChallenge: panicky, DialTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c, err := Connect(ctx, cfg, ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if c != nil {
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "OnChallenge bug") {
		t.Errorf("Connect: %v, want an error naming the panic", err)
	}
	waitUntil(t, "the router's connections closed", func() bool {
		held, _, _ := eng.FDs()
		return held == 0
	})
}

// waitUntil waits for cond, at most 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
