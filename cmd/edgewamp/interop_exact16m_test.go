package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestInteropRawSocketExact16MiBMessage: a RawSocket message of exactly
// 2^24 octets is framed with the X bit set and the 24 length bits clear
// (WAMP RawSocket, "X is an extra (25th) bit"), which neither Autobahn
// reads: Autobahn|JS 22.11.1 takes the frame type from the low 4 bits
// (0x8: "Invalid frame type"), closes, and its Node process dies on the
// bytes after it (a TypeError in Protocol._splitBytes); Autobahn|Python
// 22.7.1's asyncio protocol takes the low 3 bits and the 24 length bits
// (an empty message, then the payload read as frames). A client
// announcing 2^24 (both do by default) was lost to one such message: a
// RESULT here, and likewise an EVENT a publisher sizes to it. The Go
// callee returns a string whose JSON text makes the RawSocket JSON
// caller's RESULT exactly 2^24 octets (its request id forced to 7); the
// caller must keep its session, the RESULT refused as too long for it
// (wamp.error.payload_size_exceeded, as for a client announcing less).
func TestInteropRawSocketExact16MiBMessage(t *testing.T) {
	for _, c := range []struct {
		name string
		need string
		proc func(addr string) interopProc
	}{
		{"autobahn-js", "node", func(a string) interopProc { return ajs(a, "rs", "json", "x-exact16m") }},
		{"autobahn-py", "python", func(a string) interopProc { return abpy(a, "rs", "json", "x-exact16m") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			interopNeeds(t, c.need)
			rt := startRouter(t)
			registerExact(t, rt.addr)
			runInteropProcs(t, []interopProc{c.proc(rt.addr)}, rt.logs)
		})
	}
}

// registerExact registers big.exact on a Go client (MsgPack: its YIELD
// stays under max_message) for the test's length: a string of q quotes
// (two octets each in JSON) and a's whose JSON text, quotes around it
// included, is args[0] octets. The session lasts as long as the test.
func registerExact(t *testing.T, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	callee, err := client.Dial(ctx, client.Config{URL: "ws://" + addr + "/ws", Realm: "realm1", Serializer: proto.MsgPack})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { callee.Close() })
	const q = 1 << 20
	exact := func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		var text int
		switch v := inv.Args[0].(type) {
		case int64:
			text = int(v)
		case uint64:
			text = int(v)
		case float64:
			text = int(v)
		}
		if text < 2+2*q {
			return nil, &client.Error{URI: "wamp.error.invalid_argument"}
		}
		return &client.Result{Args: []any{strings.Repeat(`"`, q) + strings.Repeat("a", text-2-2*q)}}, nil
	}
	if _, err := callee.Register(ctx, "big.exact", exact, nil); err != nil {
		t.Fatal(err)
	}
}
