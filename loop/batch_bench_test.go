package loop

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// BenchmarkBatchedInbound measures the inbound path of a batched
// WebSocket session end to end: each iteration sends one batch of PUBLISHes
// (no acknowledgement, no subscriber) on wamp.2.json.batched; one
// acknowledged PUBLISH after the last batch waits for the router to have
// routed them all. Small batches (16 messages) are read from gnet's buffer;
// large ones (1 MiB) are gathered in chunks (large.go) and routed a turn's
// worth at a time (conn.routeBatch).
func BenchmarkBatchedInbound(b *testing.B) {
	for _, n := range []int{16, 1 << 20} {
		name := fmt.Sprintf("batch=%dmsgs", n)
		if n >= 1<<20 {
			name = "batch=1MiB"
		}
		b.Run(name, func(b *testing.B) {
			var batch []byte
			for i := 1; ; i++ {
				m := fmt.Appendf(nil, `[16,%d,{},"com.bench"]`, i)
				if n < 1<<20 && i > n || n >= 1<<20 && len(batch)+len(m)+1 > n {
					break
				}
				batch = append(append(batch, m...), 0x1e)
			}
			addr := benchServer(b)
			c := dialTCP(b, addr, 0)
			w := &wsClient{t: b, c: c, br: bufio.NewReaderSize(c, 64<<10), ser: proto.JSON, autoPong: true}
			w.write(wsUpgradeRequest("/ws", proto.JSON.Subprotocol(true)))
			if r := readHTTPResponse(b, w.br, c); r.status != 101 {
				b.Fatalf("upgrade: %d", r.status)
			}
			w.write(cliFrame(true, opText, append(helloMsg(b, proto.JSON), 0x1e)))
			if m, err := w.readMsg(ioTimeout); err != nil || !bytes.HasPrefix(m, []byte("[2,")) {
				b.Fatalf("welcome: %q %v", m, err)
			}
			frame := cliFrame(true, opText, batch)
			b.SetBytes(int64(len(batch)))
			b.ResetTimer()
			for range b.N {
				w.write(frame)
			}
			w.write(cliFrame(true, opText, []byte(`[16,4242424242,{"acknowledge":true},"com.bench"]`+"\x1e")))
			for {
				m, err := w.readMsg(60 * time.Second)
				if err != nil {
					b.Fatal(err)
				}
				if bytes.HasPrefix(m, []byte("[17,")) {
					break
				}
			}
			b.StopTimer()
		})
	}
}

// benchServer starts a one-shard engine for a benchmark and returns its
// address.
func benchServer(b *testing.B) string {
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 1})
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(r, Options{Listeners: []Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	return e.Addrs()[0].String()
}
