package route_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// rawJSON is a RawSocket client (JSON) over a real TCP connection that
// writes frames as given and reads them one at a time.
type rawJSON struct {
	t *testing.T
	c net.Conn
}

func dialRawJSON(t *testing.T, addr string) *rawJSON {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte{0x7f, 0xf1, 0, 0}); err != nil { // 16 MiB, JSON
		t.Fatal(err)
	}
	var hs [4]byte
	if _, err := io.ReadFull(c, hs[:]); err != nil || hs[0] != 0x7f || hs[1]&0x0f != 1 {
		t.Fatalf("RawSocket handshake: %x, %v", hs, err)
	}
	return &rawJSON{t: t, c: c}
}

// write sends each message as a frame, all in one write.
func (r *rawJSON) write(msgs ...string) {
	r.t.Helper()
	var b []byte
	for _, m := range msgs {
		n := len(m)
		b = append(b, 0, byte(n>>16), byte(n>>8), byte(n))
		b = append(b, m...)
	}
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// read returns the next message, decoded.
func (r *rawJSON) read() []any {
	r.t.Helper()
	for {
		var h [4]byte
		if _, err := io.ReadFull(r.c, h[:]); err != nil {
			r.t.Fatalf("read: %v", err)
		}
		b := make([]byte, int(h[1])<<16|int(h[2])<<8|int(h[3]))
		if _, err := io.ReadFull(r.c, b); err != nil {
			r.t.Fatalf("read: %v", err)
		}
		if h[0] != 0 {
			continue // a PING or PONG
		}
		var m []any
		if err := json.Unmarshal(b, &m); err != nil {
			r.t.Fatalf("read %q: %v", b, err)
		}
		return m
	}
}

// A progressive call invocation (CALL.Options.progress: true) whose first
// chunk's timeout is out of range gets ERROR wamp.error.invalid_argument
// (2481aae) as a first chunk refused for any other reason does: once, the
// call remembered as ended so that the chunks already on their way are
// dropped. badTimeoutCall answered it apart from Shard.call: its later
// chunks carrying the same timeout got an ERROR each for the same request
// id (Autobahn|Python raises ProtocolError on an ERROR for a request it
// has not pending), and the final chunk, without it, was taken for a new
// call and reached the callee, its RESULT a second answer to the id.
func TestBadTimeoutProgressiveCallAnsweredOnce(t *testing.T) {
	lr := startLoops(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	callee := lr.dialOn(0, proto.JSON)
	got := make(chan any, 8)
	if _, err := callee.Register(ctx, "com.stream", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		got <- inv.Args
		return &client.Result{Args: []any{"ok"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	c := dialRawJSON(t, lr.addr)
	c.write(`[1,"realm1",{"roles":{"caller":{"features":{"progressive_call_invocations":true}}}}]`)
	if m := c.read(); m[0] != float64(proto.CodeWelcome) {
		t.Fatalf("HELLO answered %v", m)
	}
	c.write(
		`[48,7,{"progress":true,"timeout":-1},"com.stream",["a"]]`,
		`[48,7,{"progress":true,"timeout":-1},"com.stream",["b"]]`,
		`[48,7,{},"com.stream",["c"]]`,
		`[48,8,{},"com.stream",["marker"]]`,
	)
	var answers7 [][]any
	for {
		m := c.read()
		if len(m) < 3 {
			t.Fatalf("unexpected %v", m)
		}
		switch {
		case m[0] == float64(proto.CodeAbort) || m[0] == float64(proto.CodeGoodbye):
			t.Fatalf("the session ended: %v (answers to request 7: %v)", m, answers7)
		case m[0] == float64(proto.CodeError) && m[2] == float64(7), m[0] == float64(proto.CodeResult) && m[1] == float64(7):
			answers7 = append(answers7, m)
		case m[0] == float64(proto.CodeResult) && m[1] == float64(8):
			var invs []any
			for len(got) > 0 {
				invs = append(invs, <-got)
			}
			if len(answers7) != 1 || answers7[0][0] != float64(proto.CodeError) || answers7[0][4] != proto.URIInvalidArgument {
				t.Fatalf("request 7 (a progressive call, timeout -1) answered %d times: %v; the callee got %v; want one ERROR %s",
					len(answers7), answers7, invs, proto.URIInvalidArgument)
			}
			if len(invs) != 1 {
				t.Fatalf("the callee got %v, want only the marker call's arguments", invs)
			}
			return
		}
	}
}
