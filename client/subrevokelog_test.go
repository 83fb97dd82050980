package client

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A subscription the router takes away from a Client's session (a reload
// that no longer lets the role subscribe: wamp.error.not_authorized; the
// meta API's remove_subscriber) no longer delivers events on that
// session: the Client says so at WARN, naming the topic and the reason,
// as it does for a revoked registration and for a restore refused for
// good. Before, only the session's INFO line "revoked by the router",
// with the subscription id, told of it: an application logging warnings
// and errors never heard that its events had stopped.
func TestClientSubscriptionRevocationLoggedAsWarning(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	var logs lockedBuf
	sessions := make(chan *Session, 2)
	cl, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))},
		ReconnectConfig{OnSession: func(s *Session) { sessions <- s }})
	noErr(t, "Connect", err)
	defer cl.Close()
	s := <-sessions
	noErr(t, "Subscribe", cl.Subscribe(ctx, "com.kept", func(*Event) {}, nil))
	noErr(t, "Subscribe", cl.Subscribe(ctx, "com.taken", func(*Event) {}, &SubscribeOptions{Match: "prefix"}))
	other := dialRouter(t, url)
	res, err := other.Call(ctx, "wamp.subscription.match", []any{"com.taken.x"}, nil, nil)
	noErr(t, "match", err)
	ids, _ := res.Args[0].([]any)
	if len(ids) != 1 {
		t.Fatalf("wamp.subscription.match: %v", res.Args)
	}
	_, err = other.Call(ctx, "wamp.subscription.remove_subscriber", []any{ids[0], s.ID(), proto.URINotAuthorized}, nil, nil)
	noErr(t, "remove_subscriber", err)
	for deadline := time.Now().Add(wait); !strings.Contains(logs.String(), "com.taken"); {
		if time.Now().After(deadline) {
			t.Fatalf("no WARN naming com.taken after the router revoked its subscription; the WARN log has: %q", logs.String())
		}
		time.Sleep(time.Millisecond)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, proto.URINotAuthorized) || strings.Contains(out, "com.kept") {
		t.Fatalf("the WARN log does not name the revoked subscription's topic and reason alone: %q", out)
	}
}
