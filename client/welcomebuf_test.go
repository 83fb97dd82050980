package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The join's messages are read into the session's read buffer as later
// ones are, but nothing gave a large one's buffer back: a WELCOME of 8 MiB
// (its Details, over their decode budget, are left out) left the buffer
// it grew, 16 MiB, held until the router's next message, on an idle
// session for its life (README: no buffer of a message larger than 4 MiB
// is kept once it is handled).
func TestIdleSessionHoldsNoLargeWelcome(t *testing.T) {
	for _, scheme := range []string{"rs", "ws"} {
		t.Run(scheme, func(t *testing.T) {
			p := newPeer(t)
			cfg := Config{URL: p.url(scheme), Realm: "realm1", Serializer: proto.MsgPack, DialTimeout: wait, ReplyTimeout: wait}
			before := heapInUse()
			a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
			c := p.accept()
			h := c.expect(proto.CodeHello)
			w := &proto.Message{Type: proto.CodeWelcome, ID: 5}
			w.Dict = c.raw(map[string]any{"realm": string(h.URI), "authid": "x", "authrole": "anonymous", "authmethod": "anonymous",
				"roles": map[string]any{"dealer": map[string]any{}, "broker": map[string]any{}}, "pad": strings.Repeat("x", 8<<20)})
			c.send(w)
			w, h = nil, nil
			s, err := a.wait(t)
			noErr(t, "Dial", err)
			defer closeSession(t, s, c)
			time.Sleep(50 * time.Millisecond)
			held := int64(heapInUse()) - int64(before)
			t.Logf("held after an 8 MiB WELCOME: %.1f MiB", float64(held)/(1<<20))
			if held > 2<<20 {
				t.Errorf("an idle session holds %.1f MiB after an 8 MiB WELCOME; want under 2 MiB", float64(held)/(1<<20))
			}
		})
	}
}
