package loop

import (
	"net"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// waitingPong returns the length and capacity of the pong waiting on the
// router's end of c (pong.go: cn.pong; a capacity of 0: none waits), and
// whether the connection is open.
func waitingPong(t *testing.T, s *testServer, c net.Conn) (n, capacity int, open bool) {
	t.Helper()
	done := make(chan struct{}, len(s.e.allLoops()))
	for _, ls := range s.e.allLoops() {
		if ls.Execute(func() {
			defer func() { done <- struct{}{} }()
			for _, cn := range ls.conns {
				if cn.remote == c.LocalAddr().String() {
					n, capacity, open = len(cn.pong), cap(cn.pong), true
				}
			}
		}) != nil {
			done <- struct{}{}
		}
	}
	for range s.e.allLoops() {
		select {
		case <-done:
		case <-time.After(ioTimeout):
			t.Fatal("loops did not answer")
		}
	}
	return n, capacity, open
}

// Past high_water only the latest ping's pong waits (pong.go), counted in
// the backlog and in max_outbound_total by its length. A RawSocket PING may
// carry up to max_message; a later, smaller PING took the waiting pong's
// place in the same buffer, so the connection kept the large one's memory
// while its backlog and the router-wide count took only the small one's:
// a peer that does not read, one large PING and one tiny PING per
// connection, made the router hold megabytes per connection that no bound
// saw, until keepalive.timeout. (Before the fix: 1 MiB held for a 1-byte
// pong.)
func TestSupersededPongKeepsNoLargeBuffer(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.PingTimeout = time.Hour
	})
	c := dialTCP(t, s.url, 4096)
	rawPeerOnConn(t, c, "rs", proto.MsgPack)
	shrinkRouterSendBuffer(t, c, 4096)
	// Empty PINGs until the unread PONGs pass the high-water mark (256
	// KiB) and a pong waits (an empty one: a buffer, not none).
	small := make([]byte, 0, 128<<10)
	for len(small) < 120<<10 {
		small = append(small, rsFrame(1, nil)...)
	}
	deadline := time.Now().Add(ioTimeout)
	for {
		c.SetWriteDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Write(small); err != nil {
			t.Fatal(err)
		}
		if _, capacity, open := waitingPong(t, s, c); !open {
			t.Fatal("connection closed")
		} else if capacity > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no pong ever waited")
		}
	}
	const big = 1 << 20
	c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write(rsFrame(1, make([]byte, big))); err != nil {
		t.Fatal(err)
	}
	eventually(t, ioTimeout, "the large PING's pong to wait", func() bool {
		n, _, _ := waitingPong(t, s, c)
		return n == big
	})
	if _, err := c.Write(rsFrame(1, []byte{1})); err != nil {
		t.Fatal(err)
	}
	eventually(t, ioTimeout, "the tiny PING's pong to wait in its place", func() bool {
		n, _, _ := waitingPong(t, s, c)
		return n == 1
	})
	n, capacity, _ := waitingPong(t, s, c)
	if capacity >= largeOut {
		t.Fatalf("a waiting pong of %d bytes holds a buffer of %d bytes, counted nowhere", n, capacity)
	}
}
