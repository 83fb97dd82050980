package loop

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Memory per connection, idle and after a large message each way: an idle
// connection holds no read or write buffer (gnet's inbound buffer goes back
// to its pool when empty, the output buffer to the loop's pool or to the
// collector), so the cost per session is its structures only. The numbers
// include the test's client side (a net.Conn per session, no bufio) and are
// logged; the bound only catches a buffer kept per connection.
func TestSocketMemoryPerConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("opens hundreds of connections")
	}
	t.Parallel()
	s := startServer(t, nil)
	pub := s.dial("ws", proto.MsgPack)
	const n = 300
	hello := cliFrame(true, opBinary, helloMsg(t, proto.MsgPack))
	sub := cliFrame(true, opBinary, encodeMsg(t, proto.MsgPack, &proto.Message{
		Type: proto.CodeSubscribe, Request: 1, Dict: emptyDict(t, proto.MsgPack), URI: []byte("com.mem")}))

	before := heapInUse()
	conns := make([]net.Conn, n)
	for i := range conns {
		c := dialTCP(t, s.url, 0)
		conns[i] = c
		c.Write(append(append(wsUpgradeRequest("/ws", "wamp.2.msgpack"), hello...), sub...))
	}
	// Read each upgrade, WELCOME and SUBSCRIBED (small: a 2 KiB buffer).
	buf := make([]byte, 2048)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		got := 0
		// SUBSCRIBED is [33, Request, Subscription]: fixarray(3), 33.
		for !bytes.Contains(buf[:got], []byte{0x93, 0x21}) {
			if got == len(buf) {
				t.Fatal("no SUBSCRIBED in 2 KiB")
			}
			k, err := c.Read(buf[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += k
		}
	}
	eventually(t, ioTimeout, "all sessions", func() bool { return s.r.SessionCount() == n+1 })
	idle := heapInUse()
	perIdle := (int64(idle) - int64(before)) / n

	// A 256 KiB EVENT to every session (read in full by each client), and
	// a 256 KiB message from every session, sent in two writes so that
	// the router's inbound buffer has to hold the first part.
	big := make([]byte, 256<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, "com.mem", []any{big}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		var h [10]byte
		if _, err := io.ReadFull(c, h[:]); err != nil { // 127-length header
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, c, int64(h[2])<<56|int64(h[3])<<48|int64(h[4])<<40|int64(h[5])<<32|
			int64(h[6])<<24|int64(h[7])<<16|int64(h[8])<<8|int64(h[9])); err != nil {
			t.Fatal(err)
		}
	}
	w := &wamp{t: t, ser: proto.MsgPack}
	frame := cliFrame(true, opBinary, w.publishMsg(2, "com.mem.in", []any{big}, true))
	for _, c := range conns {
		c.Write(frame[:len(frame)/2])
	}
	time.Sleep(50 * time.Millisecond)
	for _, c := range conns {
		c.Write(frame[len(frame)/2:])
	}
	for _, c := range conns { // PUBLISHED
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	after := heapInUse()
	perAfter := (int64(after) - int64(before)) / n
	t.Logf("heap per connection (server side + test client): idle session %d B; after a 256 KiB message each way %d B",
		perIdle, perAfter)
	if perAfter > 64<<10 {
		t.Fatalf("%d B per connection after large messages: a buffer is kept per connection", perAfter)
	}
	runtime.KeepAlive(conns)
}
