package client

import (
	"context"
	"testing"
	"time"
)

// A subscription the router takes away (wamp.subscription.remove_subscriber,
// a reload's revocation) is reported: Subscription.Active turns false, as
// its documentation says. The router tells only subscribers that announce
// subscription_revocation (WAMP Advanced Profile), so the client must
// announce it, as it announces registration_revocation.
func TestSubscriptionRevokedByRealRouter(t *testing.T) {
	url := startRouter(t)
	s := dialRouter(t, url)
	admin := dialRouter(t, url)
	ctx := context.Background()
	sub, err := s.Subscribe(ctx, "com.topic", func(*Event) {}, nil)
	noErr(t, "Subscribe", err)
	reg, err := s.Register(ctx, "com.proc", func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
	noErr(t, "Register", err)
	_, err = admin.Call(ctx, "wamp.subscription.remove_subscriber", []any{sub.ID(), s.ID()}, nil, nil)
	noErr(t, "remove_subscriber", err)
	_, err = admin.Call(ctx, "wamp.registration.remove_callee", []any{reg.ID(), s.ID()}, nil, nil)
	noErr(t, "remove_callee", err)
	deadline := time.Now().Add(time.Second)
	for (reg.Active() || sub.Active()) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if reg.Active() {
		t.Error("Registration.Active after the router removed the callee")
	}
	if sub.Active() {
		t.Error("Subscription.Active a second after the router removed the subscriber: the client was not told (it does not announce subscription_revocation)")
	}
}
