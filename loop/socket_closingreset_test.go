package loop

import (
	"bytes"
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A WebSocket session that ends with GOODBYE while the router still holds
// output for it (a result, events) waits up to 2 s for the peer's close
// frame, behind that output. A peer that reads it, but not all of it
// within the 2 s, is closed with a FIN behind the rest, as before
// 85bb96e: it reads the router's GOODBYE and close frame, then EOF. One
// that took nothing in the 2 s is reset (85bb96e), so that the kernel
// keeps no orphan of what it never reads.
func TestClosingHandshakeReaderKeepsGoodbye(t *testing.T) {
	t.Parallel()
	const result = 768 << 10
	clk := newFakeClock()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.HighWater = bpHighWater
		o.HardLimit = bpHardLimit
		o.Now = clk.Now
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s.registerBlob(ctx, t, result)
	// closing: a session with a result queued and not read, that says
	// GOODBYE; returns once the router waits for its close frame.
	closing := func(t *testing.T) *wsClient {
		c := dialTCP(t, s.url, 16<<10)
		w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack}
		w.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
		w.expectUpgrade()
		p := newWAMP(t, w, proto.MsgPack)
		p.join()
		w.write(cliFrame(true, opBinary, p.callMsg(p.nextReq(), "com.blob", nil)))
		eventually(t, ioTimeout, "the result queued", func() bool {
			st, ok := s.e.statOf(t, c)
			_, q := routerSocket(t, c)
			return ok && int64(st.backlog)+q > result/2
		})
		w.write(cliFrame(true, opBinary, p.goodbye()))
		eventually(t, ioTimeout, "the router's closing handshake", func() bool {
			st, ok := s.e.statOf(t, c)
			return ok && st.phase == phClosing
		})
		return w
	}

	t.Run("reading", func(t *testing.T) {
		w := closing(t)
		// Most of it read within the handshake's 2 s, the rest after.
		got := make([]byte, result*2/3)
		w.c.SetReadDeadline(time.Now().Add(ioTimeout))
		if _, err := io.ReadFull(w.br, got); err != nil {
			t.Fatal(err)
		}
		s.tick(clk, 3*time.Second)
		eventually(t, ioTimeout, "the close", func() bool { return !s.openAt(w.c) })
		w.c.SetReadDeadline(time.Now().Add(ioTimeout))
		rest, err := io.ReadAll(w.br)
		if errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("a peer that read %d KiB of its %d KiB result in the closing handshake was reset after %d KiB more: its GOODBYE and close frame lost",
				len(got)>>10, result>>10, len(rest)>>10)
		}
		if err != nil {
			t.Fatal(err)
		}
		all := append(got, rest...)
		if !bytes.Contains(all, []byte(proto.CloseGoodbyeAndOut)) || !bytes.HasSuffix(all, []byte{0x88, 0x02, 0x03, 0xe8}) {
			t.Fatalf("the reading peer got %d bytes without the router's GOODBYE and close frame", len(all))
		}
	})

	t.Run("not_reading", func(t *testing.T) {
		w := closing(t)
		s.tick(clk, 3*time.Second)
		eventually(t, ioTimeout, "the close", func() bool { return !s.openAt(w.c) })
		deadline := time.Now().Add(2 * time.Second)
		for {
			found, q := routerSocket(t, w.c)
			if !found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the router's socket of a peer that read nothing in its closing handshake is still in the kernel, %d KiB in its send queue", q>>10)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
