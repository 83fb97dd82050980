package route_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Over real sockets: a RawSocket callee that announced a 512-byte maximum
// and a WebSocket callee share a round robin registration; a caller's
// 600-byte calls all reach the WebSocket callee (rerouted past the short
// one), none fails wamp.error.payload_size_exceeded. Before, every other
// call failed so.
func TestSocketCallTooLongForOneCalleeRerouted(t *testing.T) {
	lr := startLoops(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(url string, max int) *client.Session {
		s, err := client.Dial(ctx, client.Config{URL: url, Realm: "realm1", Serializer: proto.JSON, MaxMessage: max})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	short := dial("rs://"+lr.addr, 512)
	long := dial("ws://"+lr.addr+"/ws", 0)
	var shortGot, longGot atomic.Int64
	handler := func(n *atomic.Int64) client.Handler {
		return func(context.Context, *client.Invocation) (*client.Result, error) {
			n.Add(1)
			return &client.Result{Args: []any{"ok"}}, nil
		}
	}
	opts := &client.RegisterOptions{Invoke: "roundrobin"}
	if _, err := short.Register(ctx, "com.up", handler(&shortGot), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := long.Register(ctx, "com.up", handler(&longGot), opts); err != nil {
		t.Fatal(err)
	}
	caller := dial("ws://"+lr.addr+"/ws", 0)
	big := strings.Repeat("x", 600)
	for i := range 6 {
		if _, err := caller.Call(ctx, "com.up", []any{big}, nil, nil); err != nil {
			var we *client.Error
			if errors.As(err, &we) {
				t.Fatalf("call %d: ERROR %s %v", i, we.URI, we.Args)
			}
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if shortGot.Load() != 0 || longGot.Load() != 6 {
		t.Fatalf("short callee ran %d calls, long %d; want 0 and 6", shortGot.Load(), longGot.Load())
	}
}
