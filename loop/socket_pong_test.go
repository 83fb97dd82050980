package loop

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// TestSocketPingFloodBounded floods pings from a peer that never reads
// (RawSocket and WebSocket, before and after HELLO): the router's backlog
// for it stays within the high-water mark plus one pong (only the latest
// ping is answered past the mark), the peer is closed once its pong has
// waited PingTimeout, the engine's outbound total and the heap come back
// down after it leaves, and another session keeps working throughout.
// (Before pongs were bounded, a non-reading peer's pongs queued without
// limit: 200 MiB of pings took RSS from 11 MB to 283 MB, the peer was
// never closed.)
func TestSocketPingFloodBounded(t *testing.T) {
	const high, hard = 64 << 10, 256 << 10
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.HighWater, o.HardLimit = high, hard
		o.PingTimeout = time.Second
	})
	h := newHealthy(s)
	heapBefore := int64(heapInUse())
	for _, transport := range []string{"rs", "ws"} {
		for _, hello := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/hello=%v", transport, hello), func(t *testing.T) {
				c := dialTCP(t, s.url, 4096)
				p := rawPeerOnConn(t, c, transport, proto.JSON)
				if hello {
					newWAMP(t, p.mc, proto.JSON).join()
				}
				payload := make([]byte, 125) // the largest WebSocket control payload
				for i := range payload {
					payload[i] = byte(i)
				}
				var chunk []byte
				for len(chunk) < 32<<10 {
					chunk = append(chunk, p.ping(payload)...)
				}
				watch := watchBacklog(t, s, c)
				var sent atomic.Int64
				flooded := make(chan error, 1)
				go func() { // flood until the router closes the connection
					for {
						c.SetWriteDeadline(time.Now().Add(ioTimeout))
						n, err := c.Write(chunk)
						sent.Add(int64(n))
						if err != nil {
							flooded <- err
							return
						}
					}
				}()
				select {
				case err := <-flooded:
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatalf("the router stopped reading the flood instead of closing the peer")
					}
				case <-time.After(3 * ioTimeout):
					t.Fatalf("flooding peer not closed (%d MiB of pings sent)", sent.Load()>>20)
				}
				maxBacklog := watch.finish()
				t.Logf("%d MiB of pings sent; largest backlog %d KiB", sent.Load()>>20, maxBacklog>>10)
				if limit := high + 2*(len(payload)+14); maxBacklog > limit {
					t.Fatalf("backlog reached %d bytes, above the high-water mark and one pong (%d)", maxBacklog, limit)
				}
				if maxBacklog < high/2 {
					t.Fatalf("backlog peaked at %d bytes: the flood did not reach the high-water mark, the test proves nothing", maxBacklog)
				}
				h.checkT(t)
			})
		}
	}
	eventually(t, ioTimeout, "the outbound total back to zero", func() bool {
		held, _, _ := s.e.Outbound()
		return held == 0
	})
	if st := s.e.Stats(); st.PongsCoalesced == 0 || st.Closes[CloseSlowConsumer] < 4 {
		t.Fatalf("stats: %d pongs coalesced, %d slow-consumer closes; want > 0 and >= 4", st.PongsCoalesced, st.Closes[CloseSlowConsumer])
	}
	if grown := int64(heapInUse()) - heapBefore; grown > 8<<20 {
		t.Fatalf("heap grew by %d KiB after the flooding peers left", grown>>10)
	}
	h.check()
}

// TestSocketPingFloodHardLimit: RawSocket pings may carry large payloads;
// one whose pong would take the backlog past the hard limit closes the
// peer at once.
func TestSocketPingFloodHardLimit(t *testing.T) {
	const high, hard = 64 << 10, 256 << 10
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.HighWater, o.HardLimit = high, hard
	})
	h := newHealthy(s)
	c := dialTCP(t, s.url, 4096)
	p := rawPeerOnConn(t, c, "rs", proto.MsgPack)
	big := make([]byte, 200<<10)
	go func() {
		for {
			c.SetWriteDeadline(time.Now().Add(ioTimeout))
			if _, err := c.Write(p.ping(big)); err != nil {
				return
			}
		}
	}()
	eventually(t, 3*ioTimeout, "the peer closed", func() bool {
		_, open := s.e.statOf(t, c)
		return !open
	})
	if n := s.e.Stats().Closes[CloseSlowConsumer]; n != 1 {
		t.Fatalf("%d slow-consumer closes, want 1", n)
	}
	h.check()
}

// rawPeerOnConn is dialRaw on a connection the test dialed itself.
func rawPeerOnConn(t testing.TB, c net.Conn, transport string, ser proto.Serializer) *rawPeer {
	t.Helper()
	if transport == "ws" {
		w := &wsClient{t: t, c: c, br: newReader(c), ser: ser, autoPong: true}
		w.write(wsUpgradeRequest("/ws", ser.Subprotocol(false)))
		w.expectUpgrade()
		return &rawPeer{c: c, mc: w,
			ping: func(p []byte) []byte { return cliFrame(true, opPing, p) },
			data: func(m []byte) []byte { return cliFrame(true, w.dataOp(), m) }}
	}
	r := &rsClient{t: t, c: c, br: newReader(c), ser: ser, autoPong: true}
	r.write(rsHandshake(ser, 15))
	r.expectHandshake()
	return &rawPeer{c: c, mc: r,
		ping: func(p []byte) []byte { return rsFrame(1, p) },
		data: func(m []byte) []byte { return rsFrame(0, m) }}
}

// RawSocket PINGs may carry up to max_message bytes, each answered with a
// PONG of the same size. A pong was queued whenever the connection's own
// backlog was under high_water, whatever the router-wide output budget
// (max_outbound_total) held: a peer that opens connections, sends one large
// PING on each and reads nothing made the router hold a hard_limit's worth
// of pongs per connection, past any budget (found by review: 12 such
// connections, 4 MiB PINGs, a 1 MiB budget: 49,068 KiB held). README:
// pongs count like messages in max_outbound_total. A large pong that would
// pass the budget now closes its connection as a slow consumer (it can be
// neither dropped nor shortened).
func TestPongsCountInOutboundBudget(t *testing.T) {
	const budget, conns = 1 << 20, 12
	const ping = 4<<20 - 1024 // under the default hard limit (4 MiB)
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.MaxOutboundTotal = budget
		o.PingTimeout = time.Hour
	})
	h := newHealthy(s)
	payload := make([]byte, ping)
	before := s.e.Stats().Closes[CloseSlowConsumer]
	for range conns {
		c := dialTCP(t, s.url, 4096)
		rawPeerOnConn(t, c, "rs", proto.MsgPack)
		shrinkRouterSendBuffer(t, c, 4096)
		go c.Write(rsFrame(1, payload))
	}
	var peak int64
	deadline := time.Now().Add(8 * time.Second)
	closed := func() uint64 { return s.e.Stats().Closes[CloseSlowConsumer] - before }
	for time.Now().Before(deadline) && closed() < conns-2 {
		held, _, _ := s.e.Outbound()
		peak = max(peak, held)
		time.Sleep(10 * time.Millisecond)
	}
	held, _, _ := s.e.Outbound()
	peak = max(peak, held)
	t.Logf("router-wide output held: peak %d KiB, budget %d KiB (%d connections, one %d KiB PING each); %d closed as slow consumers",
		peak>>10, budget>>10, conns, ping>>10, closed())
	h.check()
	if limit := int64(budget + 2*ping); peak > limit {
		t.Errorf("pongs to peers that do not read held %d KiB of output, budget %d KiB: the budget does not bound pongs", peak>>10, budget>>10)
	}
	if n := closed(); n < conns-2 {
		t.Errorf("%d of %d connections closed as slow consumers: want all but those whose pong the budget took", n, conns)
	}
}

// A RawSocket client announces the longest message it accepts (512 bytes
// here); a PING longer than that cannot be answered (its PONG must carry
// the same payload, and the router must not send a frame longer than the
// client's maximum), so the connection is closed. Before, the router sent
// the 1 KiB PONG anyway.
func TestRawPingLongerThanPeerAccepts(t *testing.T) {
	s := startServer(t, nil)
	before := s.e.Stats().Closes[CloseProtocol]
	r := dialRS(t, s.url, proto.JSON, 0) // 2^9 = 512 bytes
	r.write(rsFrame(1, make([]byte, 400)))
	if typ, p, err := r.readFrame(ioTimeout); err != nil || typ != 2 || len(p) != 400 {
		t.Fatalf("PONG to a 400-byte PING: type %d, %d bytes, %v", typ, len(p), err)
	}
	r.write(rsFrame(1, make([]byte, 1024)))
	if typ, p, err := r.readFrame(ioTimeout); err == nil {
		t.Fatalf("a frame of type %d, %d bytes, to a 1 KiB PING from a peer that accepts 512: want the connection closed", typ, len(p))
	}
	eventually(t, ioTimeout, "the close counted as a protocol error", func() bool {
		return s.e.Stats().Closes[CloseProtocol] == before+1
	})
}
