package loop

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// TLS on both send paths (flush.go: conn.take seals, both backends send
// what it returns). A fan-out to TLS subscribers, one of them reading
// slowly through a small receive buffer, on an engine forced onto io_uring
// and on one forced onto write(2): every subscriber decrypts every event,
// in order; on io_uring the ciphertext went through the ring in batches,
// and short sends were handed to gnet without reordering records (a
// reordered or repeated record fails decryption: the client's sequence
// numbers would not match); on write(2) the ring is never used.
func TestTLSBothSendPaths(t *testing.T) {
	cert := newTestCert(t)
	for _, mode := range []IOUringMode{IOUringOn, IOUringOff} {
		t.Run(mode.String(), func(t *testing.T) {
			if mode == IOUringOn {
				needRing(t)
			}
			s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) {
				o.IOUring = mode
				o.HighWater, o.HardLimit = 32<<20, 64<<20
			})
			const nsubs, events, payload = 4, 1000, 4096
			topic := "com.tls.paths"
			dialSub := func(rcvBuf int, tr string) *wamp {
				raw := dialTCP(t, s.url, rcvBuf)
				tc := tls.Client(raw, cert.clientFor(0))
				tc.SetDeadline(time.Now().Add(ioTimeout))
				if err := tc.Handshake(); err != nil {
					t.Fatalf("handshake: %v", err)
				}
				tc.SetDeadline(time.Time{})
				p := newWAMP(t, rawPeerOnConn(t, tc, tr, proto.MsgPack).mc, proto.MsgPack)
				p.join()
				p.subscribe(topic)
				return p
			}
			subs := make([]*wamp, nsubs)
			for i := range subs {
				subs[i] = dialSub(0, []string{"rs", "ws"}[i%2])
			}
			slow := dialSub(4096, "rs")
			tc, _ := tlsDial(t, s.url, cert.clientFor(0))
			tc.SetDeadline(time.Time{})
			pub := rawPeerOnConn(t, tc, "rs", proto.JSON)
			pw := newWAMP(t, pub.mc, proto.JSON)
			pw.join()
			before := s.e.Stats()
			pad := strings.Repeat("x", payload)
			for i := range events {
				pub.mc.send(pw.publishMsg(pw.nextReq(), topic, []any{i, pad}, i == events-1))
			}
			pw.expect(proto.CodePublished)
			// Read one subscriber after the other: the others' sockets fill
			// meanwhile, so sends come back short and the rest waits in
			// gnet's buffer behind them.
			for i, p := range append(subs, slow) {
				for want := range events {
					if i == nsubs && want%300 == 0 {
						time.Sleep(20 * time.Millisecond)
					}
					if got := eventSeq(t, p.next()); got != want {
						t.Fatalf("subscriber %d: event %d, want %d", i, got, want)
					}
				}
			}
			after := s.e.Stats()
			sends, partial := after.RingSends-before.RingSends, after.RingPartial-before.RingPartial
			t.Logf("send path %s: %d ring sends in %d enters, %d partial", after.SendPath, sends,
				after.RingEnters-before.RingEnters, partial)
			switch mode {
			case IOUringOn:
				if after.SendPath != SendPathIOUring || sends < nsubs {
					t.Fatalf("io_uring: path %q, %d ring sends for %d TLS subscribers", after.SendPath, sends, nsubs)
				}
				if partial == 0 {
					t.Fatal("no ring send came back short: the hand-over of TLS records to gnet was not exercised")
				}
			case IOUringOff:
				if after.SendPath != SendPathWrite || sends != 0 {
					t.Fatalf("write(2): path %q, %d ring sends", after.SendPath, sends)
				}
			}
			if st := s.e.Stats(); st.TLSConns != nsubs+2 {
				t.Fatalf("%d TLS connections, want %d", st.TLSConns, nsubs+2)
			}
		})
	}
}
