package loop

// Peers that reset the connection (SO_LINGER {1, 0}: TCP RST) right after a
// message the router answers in the same callback. On loopback the message
// and the RST arrive together: the router reads the message, answers, and
// its write fails with EPIPE or ECONNRESET, which makes gnet close the
// connection synchronously, from inside the router's own flush. Before the
// flush path was made re-entrancy safe, the first such reset took the
// process down (issue 10, item 1: a nil dereference in loopState.flush).

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// resetConn closes c with an RST instead of a FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// rawPeer is a raw connection of either transport, for tests that write
// frames by hand and then reset.
type rawPeer struct {
	c    net.Conn
	mc   msgConn
	ping func(payload []byte) []byte // a transport-level ping frame
	data func(msg []byte) []byte     // a frame carrying one WAMP message
}

// dialRaw opens a raw connection on transport "ws" or "rs" (handshake
// done, no HELLO).
func dialRaw(t testing.TB, addr, transport string, ser proto.Serializer) *rawPeer {
	t.Helper()
	if transport == "ws" {
		w := dialWS(t, addr, ser)
		return &rawPeer{c: w.c, mc: w,
			ping: func(p []byte) []byte { return cliFrame(true, opPing, p) },
			data: func(m []byte) []byte { return cliFrame(true, w.dataOp(), m) }}
	}
	r := dialRS(t, addr, ser, 15)
	return &rawPeer{c: r.c, mc: r,
		ping: func(p []byte) []byte { return rsFrame(1, p) },
		data: func(m []byte) []byte { return rsFrame(0, m) }}
}

// resetCase prepares a connection and returns the bytes after which it
// resets: a message the router answers at once.
type resetCase struct {
	name    string
	trigger func(t testing.TB, p *rawPeer, w *wamp) []byte
}

var resetCases = []resetCase{
	{"pong", func(t testing.TB, p *rawPeer, w *wamp) []byte {
		return p.ping([]byte("are you there"))
	}},
	{"abort-unknown-realm", func(t testing.TB, p *rawPeer, w *wamp) []byte {
		return p.data(encodeMsg(t, w.ser, &proto.Message{Type: proto.CodeHello, URI: []byte("no.such.realm"),
			Dict: rawValue(t, w.ser, map[string]any{"roles": map[string]any{"caller": map[string]any{}}})}))
	}},
	{"welcome", func(t testing.TB, p *rawPeer, w *wamp) []byte {
		return p.data(helloMsg(t, w.ser))
	}},
	{"result", func(t testing.TB, p *rawPeer, w *wamp) []byte {
		w.join()
		return p.data(w.callMsg(w.nextReq(), "wamp.session.count", nil))
	}},
	{"error", func(t testing.TB, p *rawPeer, w *wamp) []byte {
		w.join()
		return p.data(w.callMsg(w.nextReq(), "com.no.such.procedure", nil))
	}},
	{"published", func(t testing.TB, p *rawPeer, w *wamp) []byte {
		w.join()
		return p.data(w.publishMsg(w.nextReq(), "com.reset.published", []any{"x"}, true))
	}},
	{"event-to-self", func(t testing.TB, p *rawPeer, w *wamp) []byte {
		w.join()
		w.subscribe("com.reset.self")
		return p.data(encodeMsg(t, w.ser, &proto.Message{Type: proto.CodePublish, Request: w.nextReq(),
			URI: []byte("com.reset.self"), Args: rawValue(t, w.ser, []any{"x"}),
			Dict: rawValue(t, w.ser, map[string]any{"acknowledge": true, "exclude_me": false})}))
	}},
}

// TestSocketResetAfterAnswer resets right after each message class the
// router answers in the same callback, on both transports, many times; the
// router must stay up and keep serving a well-behaved session.
func TestSocketResetAfterAnswer(t *testing.T) {
	s := startServer(t, func(o *Options, _ *route.Config) { o.Flush = FlushTraffic })
	h := newHealthy(s)
	const tries = 25
	for _, transport := range []string{"rs", "ws"} {
		for _, rc := range resetCases {
			t.Run(transport+"/"+rc.name, func(t *testing.T) {
				for i := range tries {
					ser := []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR}[i%3]
					p := dialRaw(t, s.url, transport, ser)
					w := newWAMP(t, p.mc, ser)
					b := rc.trigger(t, p, w)
					p.c.Write(b)
					resetConn(p.c)
				}
				h.checkT(t)
			})
		}
	}
	// Every reset connection is gone; the healthy pair's two remain.
	eventually(t, ioTimeout, "reset connections closed", func() bool { return len(s.e.connStats(t)) == 2 })
	h.check()
}

// TestSocketResetEventFanout resets subscribers while a publisher on the
// same loops publishes to them: the router's write to a reset subscriber
// fails in the middle of the fan-out's flush.
func TestSocketResetEventFanout(t *testing.T) {
	for _, flush := range []FlushPolicy{FlushTraffic, FlushRound} {
		t.Run(fmt.Sprint("flush", flush), func(t *testing.T) {
			s := startServer(t, func(o *Options, _ *route.Config) { o.Flush = flush })
			h := newHealthy(s)
			pub := dialRaw(t, s.url, "rs", proto.JSON)
			pw := newWAMP(t, pub.mc, proto.JSON)
			pw.join()
			for round := range 15 {
				var subs []*rawPeer
				for i := range 8 {
					transport := []string{"rs", "ws"}[i%2]
					p := dialRaw(t, s.url, transport, proto.MsgPack)
					w := newWAMP(t, p.mc, proto.MsgPack)
					w.join()
					w.subscribe("com.reset.fanout")
					subs = append(subs, p)
				}
				// Publish, and reset the subscribers while the router is
				// writing them the events: publications and resets
				// interleave.
				for i, p := range subs {
					pub.c.Write(pub.data(pw.publishMsg(pw.nextReq(), "com.reset.fanout", []any{round, i}, false)))
					resetConn(p.c)
				}
				pub.c.Write(pub.data(pw.publishMsg(pw.nextReq(), "com.reset.fanout", []any{round}, true)))
				for {
					m := pw.next()
					if m.Type == proto.CodePublished {
						break
					}
				}
			}
			h.check()
		})
	}
}

// TestSocketResetChurn is the scenario: 50 clients join, call,
// subscribe and publish in a loop, half of them leaving with an RST
// instead of a GOODBYE, while a well-behaved session keeps calling.
func TestSocketResetChurn(t *testing.T) {
	s := startServer(t, nil)
	h := newHealthy(s)
	// A callee and a subscriber that stay, so that calls and publications
	// of the churning clients have somewhere to go.
	callee := dialRaw(t, s.url, "ws", proto.JSON)
	cw := newWAMP(t, callee.mc, proto.JSON)
	cw.join()
	cw.register("com.churn.echo")
	stopCallee := make(chan struct{})
	var calleeWG sync.WaitGroup
	calleeWG.Add(1)
	go func() { // answer invocations until stopped
		defer calleeWG.Done()
		for {
			select {
			case <-stopCallee:
				return
			default:
			}
			b, err := callee.mc.readMsg(200 * time.Millisecond)
			if err != nil {
				continue
			}
			m, err := proto.Decode(proto.JSON, b)
			if err != nil || m.Type != proto.CodeInvocation {
				continue
			}
			callee.c.Write(callee.data(encodeMsg(t, proto.JSON, &proto.Message{Type: proto.CodeYield,
				Request: m.Request, Dict: emptyDict(t, proto.JSON), Args: m.Args})))
		}
	}()
	d := 4 * time.Second
	if testing.Short() {
		d = 2 * time.Second
	}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var sessions atomic.Int64
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for time.Now().Before(deadline) {
				churnOnce(s.url, rng, g%2 == 0)
				sessions.Add(1)
			}
		}()
	}
	for time.Now().Before(deadline) {
		h.check()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	close(stopCallee)
	calleeWG.Wait()
	h.check()
	t.Logf("%d churning sessions", sessions.Load())
}

// churnOnce runs one short session: join, a few calls, publications, pings
// and a subscription, then GOODBYE or (reset) an RST in the middle of
// things. It runs on its own goroutine, so it reports nothing: the test
// checks the router, not the churning clients.
func churnOnce(addr string, rng *rand.Rand, reset bool) {
	ser := []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR}[rng.IntN(3)]
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	frame := quietHandshake(c, rng.IntN(2) == 0, ser)
	if frame == nil {
		return
	}
	enc := func(m *proto.Message) []byte {
		b, _ := proto.Append(nil, ser, m)
		return frame(0, b)
	}
	dict := func(v map[string]any) proto.Raw { r, _ := proto.EncodeValue(ser, v); return r }
	list := func(v []any) proto.Raw { r, _ := proto.EncodeValue(ser, v); return r }
	out := enc(&proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: dict(map[string]any{
		"roles": map[string]any{"caller": map[string]any{}, "publisher": map[string]any{}, "subscriber": map[string]any{}}})})
	for req := range uint64(1 + rng.IntN(6)) {
		switch rng.IntN(4) {
		case 0:
			out = append(out, enc(&proto.Message{Type: proto.CodeCall, Request: req + 1, Dict: dict(nil),
				URI: []byte("com.churn.echo"), Args: list([]any{"x"})})...)
		case 1:
			out = append(out, enc(&proto.Message{Type: proto.CodePublish, Request: req + 1,
				Dict: dict(map[string]any{"acknowledge": rng.IntN(2) == 0}), URI: []byte("com.churn.topic"), Args: list([]any{"y"})})...)
		case 2:
			out = append(out, enc(&proto.Message{Type: proto.CodeSubscribe, Request: req + 1, Dict: dict(nil),
				URI: []byte("com.churn.topic")})...)
		case 3:
			out = append(out, frame(1, []byte("p"))...)
		}
	}
	if _, err := c.Write(out); err != nil {
		return
	}
	if reset {
		if rng.IntN(2) == 0 {
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		}
		resetConn(c)
		return
	}
	c.Write(enc(&proto.Message{Type: proto.CodeGoodbye, Dict: dict(nil), URI: []byte(proto.CloseGoodbyeAndOut)}))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// quietHandshake opens a WebSocket (ws) or RawSocket session on c without
// reporting to a testing.TB, and returns a function that frames a message
// (typ 0) or a ping (typ 1); nil when the handshake failed.
func quietHandshake(c net.Conn, ws bool, ser proto.Serializer) func(typ byte, p []byte) []byte {
	if !ws {
		if _, err := c.Write(rsHandshake(ser, 15)); err != nil {
			return nil
		}
		var b [4]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || b[1]&0x0f != byte(ser) {
			return nil
		}
		return rsFrame
	}
	if _, err := c.Write(wsUpgradeRequest("/ws", ser.Subprotocol(false))); err != nil {
		return nil
	}
	// Read the 101 byte by byte, so that no frame after it is consumed.
	var hdr []byte
	var b [1]byte
	for !bytes.HasSuffix(hdr, []byte("\r\n\r\n")) {
		if _, err := c.Read(b[:]); err != nil || len(hdr) > 4096 {
			return nil
		}
		hdr = append(hdr, b[0])
	}
	if !bytes.HasPrefix(hdr, []byte("HTTP/1.1 101")) {
		return nil
	}
	op := byte(opBinary)
	if ser == proto.JSON {
		op = opText
	}
	return func(typ byte, p []byte) []byte {
		if typ == 1 {
			return cliFrame(true, opPing, p)
		}
		return cliFrame(true, op, p)
	}
}

// TestSocketResetAfterAnswerTLS: the same resets through a TLS listener,
// where the loop's side of the connection is a socketpair and the RST
// reaches it through the bridge goroutines (a write error or an end of
// input on the socketpair).
func TestSocketResetAfterAnswerTLS(t *testing.T) {
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, nil)
	callee := s.dialCfg(client.Config{URL: "rss://" + s.url, Serializer: proto.MsgPack, TLS: cert.client})
	proc := registerEcho(t, callee)
	caller := s.dialCfg(client.Config{URL: "wss://" + s.url + "/ws", Serializer: proto.JSON, TLS: cert.client})
	clientTLS := cert.client.Clone()
	clientTLS.ServerName = "localhost"
	check := func(t *testing.T) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		if _, err := caller.Call(ctx, proc, []any{"x"}, nil, nil); err != nil {
			t.Fatalf("healthy TLS session: %v", err)
		}
	}
	for _, transport := range []string{"rs", "ws"} {
		for _, rc := range resetCases {
			t.Run(transport+"/"+rc.name, func(t *testing.T) {
				for i := range 6 {
					ser := []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR}[i%3]
					raw := dialTCP(t, s.url, 0)
					raw.(*net.TCPConn).SetLinger(0)
					tc := tls.Client(raw, clientTLS)
					tc.SetDeadline(time.Now().Add(ioTimeout))
					if err := tc.Handshake(); err != nil {
						t.Fatal(err)
					}
					p := rawPeerOnConn(t, tc, transport, ser)
					b := rc.trigger(t, p, newWAMP(t, p.mc, ser))
					tc.Write(b)
					raw.Close() // RST under the TLS session
				}
				check(t)
			})
		}
	}
	eventually(t, ioTimeout, "the reset TLS connections released", func() bool { return s.e.tlsCount() == 2 })
	check(t)
}
