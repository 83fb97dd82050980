package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A Register with a nil Handler was accepted: the router took the
// registration, and each call of it panicked in the callee (recovered,
// logged at ERROR with its stack) and failed the caller with
// wamp.error.runtime_error, a procedure registered for nothing, at the
// callers' rate. It is refused at Register with ErrNilHandler, nothing
// sent (a Session's and a Client's alike).
func TestRegisterNilHandlerRefused(t *testing.T) {
	url := startRouter(t)
	callee, caller := dialRouter(t, url), dialRouter(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	reg, err := callee.Register(ctx, "com.example.nil", nil, nil)
	if !errors.Is(err, ErrNilHandler) {
		t.Fatalf("Session.Register with a nil Handler: %v, %v; want ErrNilHandler", reg, err)
	}
	cl, err := Connect(ctx, Config{URL: url, Realm: "realm1"}, ReconnectConfig{MinBackoff: 20 * time.Millisecond})
	noErr(t, "Connect", err)
	defer cl.Close()
	if err := cl.Register(ctx, "com.example.nil2", nil, nil); !errors.Is(err, ErrNilHandler) {
		t.Fatalf("Client.Register with a nil Handler: %v; want ErrNilHandler", err)
	}
	for _, p := range []string{"com.example.nil", "com.example.nil2"} {
		_, err := caller.Call(ctx, p, nil, nil, nil)
		wampErr(t, err, proto.URINoSuchProcedure)
	}
}
