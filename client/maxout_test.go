package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A CALL, PUBLISH or YIELD larger than the router takes fails with
// ErrMessageTooLarge, nothing sent, and the session goes on, over
// WebSocket as over RawSocket. Before, over WebSocket the client wrote
// the frame, and the router (its limits.max_message, 16 MiB by default)
// closed the connection (1009): the whole session was lost, every call in
// flight with it; over RawSocket the router's announced limit refused it.
func TestOversizeMessageRefusedOnBothTransports(t *testing.T) {
	url := startRouter(t)
	rsURL := "rs://" + strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/ws")
	big := strings.Repeat("x", 16<<20) // over the router's default maximum once encoded
	for _, u := range []string{url, rsURL} {
		t.Run(u[:2], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			callee := dialRouter(t, u)
			caller := dialRouter(t, u)
			proc := "com.big." + u[:2]
			_, err := callee.Register(ctx, proc, func(ctx context.Context, inv *Invocation) (*Result, error) {
				if len(inv.Args) > 0 && inv.Args[0] == "big" {
					return &Result{Args: []any{big}}, nil
				}
				return &Result{Args: []any{"ok"}}, nil
			}, nil)
			noErr(t, "Register", err)

			if _, err := caller.Call(ctx, proc, []any{big}, nil, nil); !errors.Is(err, ErrMessageTooLarge) {
				t.Errorf("a CALL over the router's maximum: %v, want ErrMessageTooLarge", err)
			}
			if err := caller.Publish(ctx, "com.big.topic", []any{big}, nil, nil); !errors.Is(err, ErrMessageTooLarge) {
				t.Errorf("a PUBLISH over the router's maximum: %v, want ErrMessageTooLarge", err)
			}
			// The callee's YIELD is too large: the caller gets
			// payload_size_exceeded, and the callee's session goes on.
			_, err = caller.Call(ctx, proc, []any{"big"}, nil, nil)
			if we, ok := errors.AsType[*Error](err); !ok || we.URI != proto.URIPayloadSizeExceeded {
				t.Errorf("a call whose YIELD is over the router's maximum: %v, want %s", err, proto.URIPayloadSizeExceeded)
			}
			res, err := caller.Call(ctx, proc, []any{"small"}, nil, nil)
			if err != nil || len(res.Args) != 1 || res.Args[0] != "ok" {
				t.Fatalf("a small call after the refused ones: %v %v; want both sessions alive", res, err)
			}
			if err := caller.Err(); err != nil {
				t.Fatalf("the caller's session: %v", err)
			}
		})
	}
}
