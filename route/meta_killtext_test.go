package route_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A kill's message is any text its caller sends, in the caller's
// serializer; the GOODBYE carrying it goes in the killed session's. A text
// starting with NUL has no JSON form (JSON reads such a string as binary),
// so the GOODBYE to a JSON session could not be encoded: it was not sent at
// all, the session left its realm (its calls dropped unanswered from then
// on) and its connection was closed goodbye_timeout later without a word.
// It goes without its message, as one too long for the session does.
func TestKillMessageWithoutJSONFormStillSaysGoodbye(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 2, Logger: quiet,
		GoodbyeTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(ser proto.Serializer) *client.Session {
		s, err := client.Dial(ctx, client.Config{URL: "rs://" + e.Addrs()[0].String(), Realm: "realm1", Serializer: ser})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	killer := dial(proto.MsgPack)
	for _, c := range []struct {
		name string
		kill func(target *client.Session) error
	}{
		{"kill", func(target *client.Session) error {
			_, err := killer.Call(ctx, "wamp.session.kill", []any{target.ID(), "com.example.gone", "\x00 not text in JSON"}, nil, nil)
			return err
		}},
		{"kill_all", func(*client.Session) error {
			_, err := killer.Call(ctx, "wamp.session.kill_all", nil, map[string]any{"reason": "com.example.gone", "message": "\x00"}, nil)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			target := dial(proto.JSON)
			if err := c.kill(target); err != nil {
				t.Fatal(err)
			}
			select {
			case <-target.Done():
			case <-ctx.Done():
				t.Fatal("the killed session was never closed")
			}
			var we *client.Error
			if err := target.Err(); !errors.As(err, &we) || we.URI != "com.example.gone" {
				t.Fatalf("the killed JSON session ended with %v, want GOODBYE com.example.gone (without the message, which has no JSON form)", err)
			}
		})
	}
}
