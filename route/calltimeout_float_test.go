package route_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// syncBuf is a log sink the loops and the test share.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// startLoggedLoops is startLoops with the router's log, at info, kept.
func startLoggedLoops(t *testing.T) (addr string, log *syncBuf) {
	t.Helper()
	log = &syncBuf{}
	lg := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 1, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	e, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1, Logger: lg})
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
	return e.Addrs()[0].String(), log
}

// TestCallTimeoutNotAnInteger (interopatk's "Real clients"): Autobahn|JS
// sends what the application computed, and in JavaScript 1.005*1000 is
// 1004.9999999999999 and 0.1*3*1000 300.00000000000006. A CALL.Options.timeout with a fraction ended the caller's
// session (ABORT wamp.error.protocol_violation, logged at debug only), and
// Autobahn|JS then never settled the call. A finite non-negative timeout is
// taken, rounded to the millisecond (a positive one to 1 ms at least), and
// the callee gets the integer. NaN, infinities, negative numbers and ones
// of 2^63 or more are refused with ERROR wamp.error.invalid_argument
// naming the key, the session going on (they ended it: ABORT
// wamp.error.protocol_violation, and Autobahn|JS's call never settled).
func TestCallTimeoutNotAnInteger(t *testing.T) {
	addr, _ := startLoggedLoops(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		t.Run(ser.String(), func(t *testing.T) {
			dial := func() *client.Session {
				s, err := client.Dial(ctx, client.Config{URL: "ws://" + addr + "/ws", Realm: "realm1", Serializer: ser})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			callee, caller := dial(), dial()
			proc := "com.timeout." + ser.String()
			got := make(chan any, 8)
			h := func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
				got <- inv.Details["timeout"]
				return &client.Result{Args: []any{"ok"}}, nil
			}
			if _, err := callee.Register(ctx, proc, h, &client.RegisterOptions{ForwardTimeout: true}); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				sent float64
				want string
			}{{1004.9999999999999, "1005"}, {300.00000000000006, "300"}, {1100.5, "1101"}, {2999.4, "2999"}, {0.2, "1"}, {12.0, "12"}} {
				if _, err := caller.Call(ctx, proc, nil, nil, &client.CallOptions{Options: map[string]any{"timeout": tc.sent}}); err != nil {
					t.Fatalf("timeout %v: %v (session: %v)", tc.sent, err, caller.Err())
				}
				if v := <-got; fmt.Sprint(v) != tc.want {
					t.Fatalf("timeout %v: the callee got timeout %v (%T), want %s", tc.sent, v, v, tc.want)
				}
			}
			// nil: JSON.stringify's NaN and infinities. JSON has no NaN
			// or infinity of its own.
			bad := []any{-0.5, -1, 1e300, float64(1 << 63), nil}
			if ser != proto.JSON {
				bad = append(bad, math.NaN(), math.Inf(1))
			}
			for _, v := range bad {
				_, err := caller.Call(ctx, proc, nil, nil, &client.CallOptions{Options: map[string]any{"timeout": v}})
				var we *client.Error
				if !errors.As(err, &we) || we.URI != proto.URIInvalidArgument || errors.Is(err, client.ErrSessionLost) {
					t.Fatalf("timeout %v: %v, want ERROR %s", v, err, proto.URIInvalidArgument)
				}
				if !strings.Contains(fmt.Sprint(we.Args...), "CALL.Options.timeout") {
					t.Fatalf("timeout %v: the ERROR says %v, not which key", v, we.Args)
				}
				if _, err := caller.Call(ctx, proc, nil, nil, nil); err != nil {
					t.Fatalf("a call after the refused timeout %v: %v", v, err)
				}
				<-got
			}
		})
	}
}
