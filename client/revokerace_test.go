package client

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A revocation (UNREGISTERED or UNSUBSCRIBED with request 0) that the
// reader handles between the REGISTERED (SUBSCRIBED) and the Client's
// record of the registration (subscription) is acted on as any other:
// a registration revoked for a reason that may pass (a mesh's
// procedure_already_exists) is made again on the same session, one
// revoked for good and a revoked subscription are logged at WARN. Before,
// the Client's revocation hook looked for the registration among those it
// had recorded, found none, and did nothing: the Client recorded the dead
// registration afterwards, and nothing retried or told of it until the
// session ended.
func TestClientRevocationBeforeRecordActedOn(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	var logs lockedBuf
	sessions := make(chan *Session, 2)
	cl, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))},
		ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			OnSession: func(s *Session) { sessions <- s }})
	noErr(t, "Connect", err)
	defer cl.Close()
	s := <-sessions
	admin := dialRouter(t, url)
	lookup := func(meta, uri string) uint64 {
		t.Helper()
		res, err := admin.Call(ctx, meta, []any{uri}, nil, nil)
		noErr(t, meta, err)
		id, _ := toUint(res.Args[0])
		return id
	}
	// revokeNow has the router revoke what was just answered, and returns
	// once s's reader has handled the revocation: the RESULT of a call
	// of s's comes behind it.
	revokeNow := func(remove, meta, uri, reason string) {
		id := lookup(meta, uri)
		if id == 0 {
			t.Errorf("%s not found", uri)
			return
		}
		_, err := admin.Call(ctx, remove, []any{id, s.ID(), reason}, nil, nil)
		noErr(t, remove, err)
		_, err = s.Call(ctx, "wamp.session.count", nil, nil, nil)
		noErr(t, "count", err)
	}
	t.Cleanup(func() { recordHook.Store(nil) })
	h := func(context.Context, *Invocation) (*Result, error) { return nil, nil }
	for _, tc := range []struct {
		do           func() error
		remove, meta string
		uri, reason  string
	}{
		{func() error { return cl.Register(ctx, "com.warned", h, nil) }, "wamp.registration.remove_callee", "wamp.registration.lookup", "com.warned", proto.URINotAuthorized},
		{func() error { return cl.Register(ctx, "com.again", h, nil) }, "wamp.registration.remove_callee", "wamp.registration.lookup", "com.again", proto.URIProcedureAlreadyExists},
		{func() error { return cl.Subscribe(ctx, "com.topic", func(*Event) {}, nil) }, "wamp.subscription.remove_subscriber", "wamp.subscription.lookup", "com.topic", proto.URINotAuthorized},
	} {
		hook := func() { revokeNow(tc.remove, tc.meta, tc.uri, tc.reason) }
		recordHook.Store(&hook)
		noErr(t, tc.uri, tc.do())
		recordHook.Store(nil)
	}
	deadline := time.Now().Add(wait)
	for !(strings.Contains(logs.String(), "com.warned") && strings.Contains(logs.String(), "com.topic")) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if out := logs.String(); !strings.Contains(out, "com.warned") || !strings.Contains(out, "com.topic") {
		t.Errorf("no WARN naming both com.warned and com.topic, revoked right after their answers; the WARN log has: %q", out)
	}
	for lookup("wamp.registration.lookup", "com.again") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if lookup("wamp.registration.lookup", "com.again") == 0 {
		t.Error("com.again, revoked with procedure_already_exists right after its REGISTERED, was not registered again")
	}
}
