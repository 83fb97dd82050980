package loop

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// routerSocket looks the router's side of c up in /proc/net/tcp: whether
// the kernel still has it, and the bytes in its send queue.
func routerSocket(t testing.TB, c net.Conn) (found bool, sendQ int64) {
	t.Helper()
	local, remote := c.LocalAddr().(*net.TCPAddr).Port, c.RemoteAddr().(*net.TCPAddr).Port
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skip("no /proc/net/tcp:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || fs[0] == "sl" {
			continue
		}
		if port(fs[1]) != remote || port(fs[2]) != local {
			continue
		}
		q, _, _ := strings.Cut(fs[4], ":")
		n, _ := strconv.ParseInt(q, 16, 64)
		return true, n
	}
	return false, 0
}

// port returns the port of a /proc/net/tcp address, "0100007F:1F90".
func port(a string) int {
	_, p, _ := strings.Cut(a, ":")
	n, _ := strconv.ParseInt(p, 16, 32)
	return int(n)
}

// A connection closed because its peer does not take its output is reset
// (SO_LINGER 0), so that the kernel drops the send queue the peer never
// read. Closed plainly, the router's socket stayed in FIN_WAIT1 as an
// orphan, its FIN queued behind up to tcp_wmem's maximum of unsent output
// (which the router's hard_limit does not count), for as long as the
// peer kept its window closed. Two ways a non-reader is closed: a caller
// whose results pass hard_limit (slow_consumer), and a subscriber whose
// events are dropped that never answers the keepalive ping
// (keepalive_timeout).
func TestSlowReaderClosedWithReset(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.HighWater = bpHighWater
		o.HardLimit = bpHardLimit
		o.PingInterval = kaInterval
		o.PingTimeout = kaTimeout
		o.Now = clk.Now
	})
	h := newHealthy(s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callee := s.dial("rs", proto.MsgPack)
	blob := make([]byte, 64<<10)
	if _, err := callee.Register(ctx, "com.blob", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{blob}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	// gone waits until the router has closed c and reports whether its
	// socket is gone from the kernel, else the bytes it holds.
	gone := func(t *testing.T, what string, c net.Conn) {
		t.Helper()
		eventually(t, 30*time.Second, what+" closed", func() bool { return !s.openAt(c) })
		var q int64
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			found, n := routerSocket(t, c)
			if !found {
				return
			}
			q = n
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("%s: the router's socket is still in the kernel 2 s after its close, %d KiB in its send queue", what, q>>10)
	}

	t.Run("slow_consumer", func(t *testing.T) {
		c := dialTCP(t, s.url, 4096)
		w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack, autoPong: true}
		w.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
		w.expectUpgrade()
		p := newWAMP(t, w, proto.MsgPack)
		p.join()
		go func() { // calls, never reading, until the router closes it
			for i := uint64(1); i < 2000; i++ {
				c.SetWriteDeadline(time.Now().Add(ioTimeout))
				if _, err := c.Write(cliFrame(true, opBinary, p.callMsg(i, "com.blob", nil))); err != nil {
					return
				}
			}
		}()
		gone(t, "the slow caller", c)
	})

	t.Run("keepalive", func(t *testing.T) {
		c := dialTCP(t, s.url, 4096)
		subscribeRaw(t, c, "com.flood")
		pub := s.dial("ws", proto.MsgPack)
		// Events until some are dropped: the subscriber's backlog is past
		// high_water, and the kernel holds what it could take.
		for i := 0; ; i++ {
			if err := pub.Publish(ctx, "com.flood", []any{blob}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
			if dropped, _ := shardStats(s); dropped > 0 {
				break
			}
			if i > 1000 {
				t.Fatal("no event dropped for a subscriber that does not read")
			}
		}
		if found, q := routerSocket(t, c); !found || q == 0 {
			t.Fatalf("the subscriber's socket: found %v, send queue %d", found, q)
		}
		s.tick(clk, kaInterval+time.Second) // a ping, never answered
		s.waitPongs(c)                      // by this one only
		s.tick(clk, kaTimeout+time.Second)
		gone(t, "the silent subscriber", c)
	})

	// A peer that reads everything but never answers the ping leaves
	// nothing in the kernel: its close stays a FIN, and it reads EOF.
	t.Run("keepalive_reading", func(t *testing.T) {
		c := dialTCP(t, s.url, 0)
		if _, err := c.Write(wsUpgradeRequest("/ws", "wamp.2.json")); err != nil {
			t.Fatal(err)
		}
		readErr := make(chan error, 1)
		go func() {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err := io.Copy(io.Discard, c)
			if err == nil {
				err = io.EOF
			}
			readErr <- err
		}()
		eventually(t, ioTimeout, "the upgrade", func() bool { // read before the clock moves
			st, ok := s.e.statOf(t, c)
			return ok && st.phase == phWS
		})
		s.tick(clk, kaInterval+time.Second)
		s.waitPongs(c)
		s.tick(clk, kaTimeout+time.Second)
		if err := <-readErr; err != io.EOF {
			t.Fatalf("the reading peer got %v, want EOF (a FIN, not a reset)", err)
		}
	})
	h.check()
}
