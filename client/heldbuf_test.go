package client

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/edgewamp/edgewamp/proto"
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// After one large message, handled and dropped by its handler, an idle
// session holds no buffer of its size: the read buffer (RawSocket and
// WebSocket), and the decoder's scratch, into which a string with JSON
// escapes is unescaped (an EVENT's topic detail here), are given back
// once the message is handled, not when the next one comes.
func TestIdleSessionHoldsNoLargeMessage(t *testing.T) {
	for _, scheme := range []string{"rs", "ws"} {
		t.Run(scheme, func(t *testing.T) {
			s, c := setup(t, scheme, proto.JSON)
			got := make(chan int, 1)
			sub := goDo(func() (*Subscription, error) {
				return s.Subscribe(context.Background(), "com.example.t", func(ev *Event) { got <- len(ev.Args[0].(string)) }, &SubscribeOptions{Match: "prefix"})
			})
			m := c.expect(proto.CodeSubscribe)
			c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 5})
			_, err := sub.wait(t)
			noErr(t, "Subscribe", err)
			before := heapInUse()
			ev := &proto.Message{Type: proto.CodeEvent, ID: 5, ID2: 1, Args: c.raw([]any{strings.Repeat("x", 1<<20)})}
			ev.Opt.SetString(proto.KeyTopic, "com.example.t.\\u0041"+strings.Repeat("a", 4<<20))
			b := c.encode(ev)
			b = []byte(strings.Replace(string(b), `\\u0041`, `\u0041`, -1)) // escapes, not backslashes
			if scheme == "rs" {
				noErr(t, "write", c.writeRS(rsFrameMessage, b))
			} else {
				noErr(t, "write", wsutil.WriteServerMessage(c.conn, c.op(), b))
			}
			size := len(b)
			b, ev = nil, nil
			// Read (while it moves), then decoded and handled within wait.
			readAll(t, s, c)
			select {
			case n := <-got:
				eq(t, "event size", n, 1<<20)
			case <-time.After(wait):
				t.Fatalf("no event: %v", s.Err())
			}
			time.Sleep(50 * time.Millisecond)
			held := int64(heapInUse()) - int64(before)
			t.Logf("held after the event: %.1f MiB", float64(held)/(1<<20))
			if held > 2<<20 {
				t.Errorf("an idle session holds %.1f MiB after one %d MiB message was handled; want under 2 MiB", float64(held)/(1<<20), size>>20)
			}
		})
	}
}
