package loop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"math/big"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// The upgrade request and the first frames, written one byte per segment.
func TestSocketWSByteByByte(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	c := dialTCP(t, s.url, 0)
	w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.JSON, autoPong: true}
	writeSlowly(t, c, wsUpgradeRequest("/ws", "wamp.2.json"))
	w.expectUpgrade()
	p := newWAMP(t, w, proto.JSON)
	writeSlowly(t, c, cliFrame(true, opText, helloMsg(t, proto.JSON)))
	p.id = p.expect(proto.CodeWelcome).ID
	// A second message, also dribbled, on the established session.
	req := p.nextReq()
	writeSlowly(t, c, cliFrame(true, opText, encodeMsg(t, proto.JSON, &proto.Message{
		Type: proto.CodeSubscribe, Request: req, Dict: emptyDict(t, proto.JSON), URI: []byte("com.slow")})))
	if m := p.expect(proto.CodeSubscribed); m.Request != req {
		t.Fatalf("SUBSCRIBED for %d", m.Request)
	}
}

// A message in three fragments with a ping between the first two: the pong
// comes at once, then the reassembled message is routed.
func TestSocketWSFragmentedWithPing(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	for _, ser := range []proto.Serializer{proto.JSON, proto.CBOR} {
		w := dialWS(t, s.url, ser)
		hello := helloMsg(t, ser)
		a, b := len(hello)/3, 2*len(hello)/3
		op := w.dataOp()
		w.write(cliFrame(false, op, hello[:a]))
		w.write(cliFrame(true, opPing, []byte("are you there")))
		// The pong must come while the message is still partial.
		gotOp, pl, err := w.readFrame(ioTimeout)
		if err != nil || gotOp != opPong || string(pl) != "are you there" {
			t.Fatalf("%s: want pong, got op %d %q %v", ser, gotOp, pl, err)
		}
		w.write(cliFrame(false, opCont, hello[a:b]))
		// Split the last fragment across two writes too.
		last := cliFrame(true, opCont, hello[b:])
		w.write(last[:3])
		time.Sleep(5 * time.Millisecond)
		w.write(last[3:])
		p := newWAMP(t, w, ser)
		p.expect(proto.CodeWelcome)
	}
}

// A frame in the same write as the upgrade request.
func TestSocketWSPipelinedWithUpgrade(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	c := dialTCP(t, s.url, 0)
	w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack, autoPong: true}
	hello := helloMsg(t, proto.MsgPack)
	buf := append(wsUpgradeRequest("/ws", "wamp.2.msgpack"), cliFrame(true, opBinary, hello)...)
	// And a ping, and the start of the next frame.
	buf = append(buf, cliFrame(true, opPing, []byte("p"))...)
	sub := cliFrame(true, opBinary, encodeMsg(t, proto.MsgPack, &proto.Message{
		Type: proto.CodeSubscribe, Request: 1, Dict: emptyDict(t, proto.MsgPack), URI: []byte("com.pipe")}))
	buf = append(buf, sub[:4]...)
	w.write(buf)
	w.expectUpgrade()
	p := newWAMP(t, w, proto.MsgPack)
	p.expect(proto.CodeWelcome)
	op, pl, err := w.readFrame(ioTimeout)
	if err != nil || op != opPong || string(pl) != "p" {
		t.Fatalf("want pong, got %d %q %v", op, pl, err)
	}
	w.write(sub[4:])
	p.expect(proto.CodeSubscribed)
}

// randomChunksOf splits b into chunks of 1 byte to 64 KiB.
func writeRandomChunks(t testing.TB, write func([]byte), b []byte) {
	t.Helper()
	for len(b) > 0 {
		n, _ := rand.Int(rand.Reader, big.NewInt(64<<10))
		k := min(int(n.Int64())+1, len(b))
		write(b[:k])
		b = b[k:]
		if n.Int64()%7 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// A 3 MiB CALL, written in random chunks, reaches the callee and comes back
// intact.
func TestSocketWSLargeMessage(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	callee := s.dial("rs", proto.MsgPack)
	proc := registerEcho(t, callee)
	w := dialWS(t, s.url, proto.MsgPack)
	p := newWAMP(t, w, proto.MsgPack)
	p.join()
	big := make([]byte, 3<<20)
	rand.Read(big)
	frame := cliFrame(true, opBinary, p.callMsg(1, proc, []any{big, "tail"}))
	writeRandomChunks(t, w.write, frame)
	m := p.expect(proto.CodeResult)
	got := args(t, m)
	if len(got) != 2 || got[1] != "tail" {
		t.Fatalf("result args: %d values", len(got))
	}
	if b, ok := got[0].([]byte); !ok || !bytes.Equal(b, big) {
		t.Fatalf("3 MiB payload came back damaged (%T, %d bytes)", got[0], len(b))
	}
	// The connection stays usable.
	if m := p.call(proc, []any{"small"}); m.Type != proto.CodeResult {
		t.Fatalf("after the large call: %v", m.Type)
	}
}

// Client-initiated close: the router echoes the close frame and closes the
// TCP connection; the session is gone.
func TestSocketWSCloseHandshake(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	w := dialWS(t, s.url, proto.JSON)
	p := newWAMP(t, w, proto.JSON)
	p.join()
	w.write(cliFrame(true, opClose, []byte{0x03, 0xe8, 'b', 'y', 'e'})) // 1000 "bye"
	w.expectClose(1000)
	eventually(t, ioTimeout, "the session to leave", func() bool { return s.r.SessionCount() == 0 })

	// A close frame without a status: echoed with 1000 (RFC 6455 §5.5.1
	// allows any echo; 1005 itself may not be sent on the wire).
	w = dialWS(t, s.url, proto.JSON)
	w.write(cliFrame(true, opClose, nil))
	w.expectClose(1000)

	// Router-initiated close after GOODBYE: GOODBYE reply, then the close
	// frame; the client echoes it and the router closes TCP.
	w = dialWS(t, s.url, proto.JSON)
	p = newWAMP(t, w, proto.JSON)
	p.join()
	w.send(p.goodbye())
	if m := p.expect(proto.CodeGoodbye); string(m.URI) != proto.CloseGoodbyeAndOut {
		t.Fatalf("GOODBYE reply %q", m.URI)
	}
	_, err := w.readMsg(ioTimeout)
	if ce, ok := err.(*errWSClosed); !ok || ce.code != 1000 {
		t.Fatalf("want close 1000 after GOODBYE, got %v", err)
	}
	w.write(cliFrame(true, opClose, []byte{0x03, 0xe8}))
	waitClosed(t, w.c, ioTimeout)
	eventually(t, ioTimeout, "the sessions to leave", func() bool { return s.r.SessionCount() == 0 })
}

// The client package works against the engine over every transport with
// batched WebSocket subprotocols too (the batched framing of Send).
func TestSocketWSBatched(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	callee := s.dial("rs", proto.CBOR)
	proc := registerEcho(t, callee)
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		c := s.dialCfg(client.Config{URL: "ws://" + s.url + "/ws", Serializer: ser, Batched: true})
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		res, err := c.Call(ctx, proc, []any{"batched", ser.String()}, nil, nil)
		cancel()
		if err != nil || len(res.Args) != 2 || res.Args[1] != ser.String() {
			t.Fatalf("%s batched: %v %v", ser, res, err)
		}
	}
}

// dialWSBatched opens a WebSocket with the batched JSON subprotocol and
// joins realm1.
func dialWSBatched(t *testing.T, addr string) *wsClient {
	t.Helper()
	return wsBatchedOn(t, dialTCP(t, addr, 0))
}

// wsBatchedOn opens a WebSocket with the batched JSON subprotocol on c and
// joins realm1.
func wsBatchedOn(t *testing.T, c net.Conn) *wsClient {
	t.Helper()
	w := &wsClient{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10), ser: proto.JSON, autoPong: true}
	w.write(wsUpgradeRequest("/ws", proto.JSON.Subprotocol(true)))
	r := readHTTPResponse(t, w.br, c)
	if r.status != 101 {
		t.Fatalf("upgrade: %d %q", r.status, r.body)
	}
	w.write(cliFrame(true, opText, append(helloMsg(t, proto.JSON), 0x1e)))
	b, err := w.readMsg(ioTimeout)
	if err != nil || len(b) < 3 || b[1] != '2' {
		t.Fatalf("welcome: %q %v", b, err)
	}
	return w
}

// batchOf returns a JSON batch: PUBLISH "first" to com.a, PUBLISHes to
// com.none (no subscriber) until the batch holds about size bytes, with
// middle (if any) in the middle of them, and PUBLISH "last" to com.a.
func batchOf(size int, middle string) []byte {
	b := []byte(`[16,1,{},"com.a",["first"]]` + "\x1e")
	for i := 2; len(b) < size; i++ {
		if middle != "" && len(b) >= size/2 {
			b = append(append(b, middle...), 0x1e)
			middle = ""
		}
		b = append(fmt.Appendf(b, `[16,%d,{},"com.none"]`, i), 0x1e)
	}
	return append(b, `[16,999999999,{},"com.a",["last"]]`+"\x1e"...)
}

// subscribeOrder subscribes a session to com.a and returns a function that
// reports the first argument of every event so far, in order.
func subscribeOrder(t *testing.T, s *testServer, addr string) func() []string {
	t.Helper()
	sub := s.dialCfg(client.Config{URL: "ws://" + addr + "/ws", Serializer: proto.JSON})
	var mu sync.Mutex
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if _, err := sub.Subscribe(ctx, "com.a", func(ev *client.Event) {
		mu.Lock()
		defer mu.Unlock()
		if len(ev.Args) > 0 {
			got = append(got, fmt.Sprint(ev.Args[0]))
		}
	}, nil); err != nil {
		t.Fatal(err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// publishing makes another session publish to com.a every 200 µs or so,
// until the returned function is called.
func publishing(t *testing.T, s *testServer, addr string) (stop func()) {
	pub := s.dialCfg(client.Config{URL: "ws://" + addr + "/ws", Serializer: proto.JSON})
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			if pub.Publish(context.Background(), "com.a", []any{"other"}, nil, nil) != nil {
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	time.Sleep(20 * time.Millisecond)
	return func() { close(quit); <-done }
}

// One WebSocket message of a batched subprotocol (max_message, 16 MiB by
// default) carries about 760,000 small WAMP messages. The loop routed them
// all within one read callback, and every other session of the loop waited
// for the whole batch: 0.45-0.85 s for a caller on the loop, found by
// review (the same bytes sent one message per frame are read 64 KiB at a
// time, between the other connections' reads: 25-40 ms at worst). The
// batch is now routed 64 KiB at a time (batch.go), and another session's
// messages are routed between two parts of it: here another publisher's
// events to the same subscriber land between the batch's first and last
// events (none did: the batch's were all routed back to back), and the
// connection's next batch is routed after the whole of it.
func TestBatchedMessageYieldsLoop(t *testing.T) {
	cert := newTestCert(t)
	s := tlsServer(t, cert, true, func(o *Options, rc *route.Config) { rc.Shards = 1 })
	tlsAddr, addr := s.url, s.e.Addrs()[1].String()
	for _, tc := range []struct {
		name string
		dial func(t *testing.T) net.Conn
	}{
		{"plain", func(t *testing.T) net.Conn { return dialTCP(t, addr, 0) }},
		{"tls", func(t *testing.T) net.Conn {
			c, err := tls.Dial("tcp", tlsAddr, cert.client)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := subscribeOrder(t, s, addr)
			w := wsBatchedOn(t, tc.dial(t))
			batch := batchOf(2<<20, "")
			defer publishing(t, s, addr)()
			w.write(cliFrame(true, opText, batch))
			w.write(cliFrame(true, opText, []byte(`[16,1000000000,{},"com.a",["after"]]`+"\x1e")))
			var got []string
			eventually(t, 30*time.Second, "the events of both batches", func() bool {
				got = events()
				return slices.Contains(got, "after")
			})
			first, last, after := slices.Index(got, "first"), slices.Index(got, "last"), slices.Index(got, "after")
			if first < 0 || last < first || after < last {
				t.Fatalf("first at %d, last at %d, after at %d: the connection's messages out of order", first, last, after)
			}
			between := last - first - 1
			t.Logf("%d messages in a batch of %d bytes (%d turns of 64 KiB); %d events of another publisher between its first and last",
				bytes.Count(batch, []byte{0x1e}), len(batch), len(batch)>>16, between)
			if between == 0 {
				t.Errorf("no message of another session was routed while the batch was: the batch held the loop")
			}
		})
	}
}

// batchProbe reports, while some connection of ls holds the rest of a
// batch, the most gnet (and TLS) buffered for it, until no batch is held
// after one was seen, or wait passes.
func batchProbe(ls *loopState, wait time.Duration) (maxBuf int, sawBatch bool) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		done := make(chan bool, 1)
		if ls.Execute(func() {
			held := false
			for _, cn := range ls.conns {
				if cn != nil && cn.batch != nil {
					held = true
					maxBuf = max(maxBuf, cn.c.InboundBuffered(), cn.in.InboundBuffered())
				}
			}
			done <- held
		}) != nil {
			break
		}
		held := <-done
		sawBatch = sawBatch || held
		if sawBatch && !held {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return
}

// While the rest of a batch waits for its turns, the connection's later
// input is taken out of gnet's buffer: a large frame is gathered into
// chunks (large.go) whatever precedes it. Found by review: only a large
// frame at the front of the input was gathered (adoptBehindBatch), so one
// small frame between the batch and a large frame (a 30-byte PUBLISH, a
// ping) left the large frame whole in gnet's buffer, grown by steps, until
// the batch was routed. Here a small PUBLISH and a ping sit between a
// waiting 2 MiB batch and a 1 MiB one, and a last PUBLISH follows: gnet's
// buffer stays small, and the messages are routed in the order sent.
func TestBatchedLargeFrameGatheredBehindSmallFrame(t *testing.T) {
	s := startServer(t, func(o *Options, rc *route.Config) { rc.Shards = 1 })
	var ls *loopState
	s.e.mu.Lock()
	for _, l := range s.e.loops {
		ls = l
	}
	s.e.mu.Unlock()
	events := subscribeOrder(t, s, s.url)
	stop := publishing(t, s, s.url) // the batch yields to it: its rest waits
	defer stop()

	w := dialWSBatched(t, s.url)
	type probe struct {
		maxBuf int
		saw    bool
	}
	probed := make(chan probe, 1)
	go func() {
		m, saw := batchProbe(ls, 30*time.Second)
		probed <- probe{m, saw}
	}()
	big := bytes.Replace(batchOf(1<<20, ""), []byte(`["first"]`), []byte(`["big"]`), 1)
	big = bytes.Replace(big, []byte(`["last"]`), []byte(`["bigend"]`), 1)
	w.write(cliFrame(true, opText, batchOf(2<<20, "")))
	w.write(cliFrame(true, opText, []byte(`[16,1000000001,{},"com.a",["small"]]`+"\x1e")))
	w.write(cliFrame(true, opPing, []byte("behind")))
	w.write(cliFrame(true, opText, big))
	w.write(cliFrame(true, opText, []byte(`[16,1000000002,{},"com.a",["after"]]`+"\x1e")))
	r := <-probed
	if !r.saw {
		t.Skip("the batch was routed without waiting (loop not busy); nothing to observe")
	}
	t.Logf("while the batch waited, gnet buffered at most %d bytes", r.maxBuf)
	if r.maxBuf > 256<<10 {
		t.Errorf("gnet's buffer held %d bytes behind the waiting batch: the 1 MiB frame was left there, not gathered into chunks", r.maxBuf)
	}
	var got []string
	eventually(t, 30*time.Second, "the last PUBLISH's event", func() bool {
		got = events()
		return slices.Contains(got, "after")
	})
	var order []string
	for _, e := range got {
		if e != "other" {
			order = append(order, e)
		}
	}
	if want := []string{"first", "last", "small", "big", "bigend", "after"}; !slices.Equal(order, want) {
		t.Errorf("events %q, want %q: the connection's messages out of order", order, want)
	}
}

// A connection the peer closes while the rest of a batch waits for its
// turns keeps its session until the rest, and the messages it sent after
// the batch and before the close, are routed, in order and in the same
// turns; then the session leaves, its held bytes go back to the budget and
// its close is counted. Found by review: the rest was dropped (closed:
// dropBatch), so a client that sent a batch of PUBLISHes and closed at
// once lost its tail. Here the peer closes after a 512 KiB batch and a
// PUBLISH: with a FIN, after a WebSocket Close frame and a FIN (a PUBLISH
// after the Close frame is not routed), and on TLS with close_notify; and
// a GOODBYE within the rest ends the session there, as on an open
// connection (TestBatchedSessionEndsMidBatch).
func TestBatchedRestRoutedAfterPeerCloses(t *testing.T) {
	cert := newTestCert(t)
	s := tlsServer(t, cert, true, func(o *Options, rc *route.Config) { rc.Shards = 1 })
	tlsAddr, addr := s.url, s.e.Addrs()[1].String()
	events := subscribeOrder(t, s, addr)
	stop := publishing(t, s, addr) // the batch yields to it: its rest waits
	defer stop()
	plain := func(t *testing.T) net.Conn { return dialTCP(t, addr, 0) }
	for i, tc := range []struct {
		name    string
		dial    func(t *testing.T) net.Conn
		middle  string // in the middle of the batch
		close   []byte // written before the connection is closed
		goodbye bool   // the session ends at middle: nothing after it is routed
	}{
		{"eof", plain, "", nil, false},
		{"close frame", plain, "", cliFrame(true, opClose, []byte{0x03, 0xe8}), false},
		{"tls close_notify", func(t *testing.T) net.Conn {
			c, err := tls.Dial("tcp", tlsAddr, cert.client)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, "", nil, false},
		{"goodbye in the rest", plain, `[6,{},"wamp.close.close_realm"]`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := wsBatchedOn(t, tc.dial(t))
			sessions, closes := s.r.SessionCount(), s.e.Stats().Closes
			tag := func(what string) string { return fmt.Sprintf("%s%d", what, i) }
			batch := bytes.Replace(batchOf(512<<10, tc.middle), []byte(`["first"]`), []byte(`["`+tag("first")+`"]`), 1)
			batch = bytes.Replace(batch, []byte(`["last"]`), []byte(`["`+tag("last")+`"]`), 1)
			w.write(cliFrame(true, opText, batch))
			w.write(cliFrame(true, opText, fmt.Appendf(nil, `[16,1000000001,{},"com.a",[%q]]`+"\x1e", tag("after"))))
			if tc.close != nil {
				w.write(tc.close)
				w.write(cliFrame(true, opText, fmt.Appendf(nil, `[16,1000000002,{},"com.a",[%q]]`+"\x1e", tag("never"))))
			}
			w.c.Close()
			eventually(t, 30*time.Second, "the session gone, its held bytes back in the budget", func() bool {
				held, _, _ := s.e.Inbound()
				return held == 0 && s.r.SessionCount() == sessions-1
			})
			var got []string
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				// Its events reach the subscriber, and some of the other
				// publisher's after them.
				got = events()
				i := slices.Index(got, tag("after"))
				if tc.goodbye {
					i = slices.Index(got, tag("first"))
				}
				if i >= 0 && len(got)-i > 10 {
					break
				}
			}
			first, last, after := slices.Index(got, tag("first")), slices.Index(got, tag("last")), slices.Index(got, tag("after"))
			never := slices.Contains(got, tag("never"))
			switch {
			case tc.goodbye && (first < 0 || last >= 0 || after >= 0):
				t.Fatalf("%s at %d, %s at %d, %s at %d: want the batch's first, nothing after its GOODBYE",
					tag("first"), first, tag("last"), last, tag("after"), after)
			case !tc.goodbye && (first < 0 || last < first || after < last || never):
				t.Fatalf("%s at %d, %s at %d, %s at %d, %s routed: %v: want the batch's rest and the PUBLISH after it routed, in order, and nothing after a Close frame",
					tag("first"), first, tag("last"), last, tag("after"), after, tag("never"), never)
			}
			if n := s.e.Stats().Closes; n[ClosePeer]+n[CloseWSClose]+n[CloseSession] != closes[ClosePeer]+closes[CloseWSClose]+closes[CloseSession]+1 {
				t.Errorf("closes %v, before %v: want one more", n, closes)
			}
		})
	}
}

// A session that ends within a batch routes none of the rest, in whichever
// turn it ends (here its GOODBYE, half way through a batch of several
// turns). (A connection the peer closes while the rest waits routes it:
// TestBatchedRestRoutedAfterPeerCloses.)
func TestBatchedSessionEndsMidBatch(t *testing.T) {
	s := startServer(t, func(o *Options, rc *route.Config) { rc.Shards = 1 })
	events := subscribeOrder(t, s, s.url)
	pub := s.dial("ws", proto.JSON)
	synced := func(tag string) []string {
		t.Helper()
		if err := pub.Publish(context.Background(), "com.a", []any{tag}, nil, nil); err != nil {
			t.Fatal(err)
		}
		var got []string
		eventually(t, 30*time.Second, "the sync event", func() bool {
			got = events()
			return slices.Contains(got, tag)
		})
		return got
	}

	t.Run("goodbye", func(t *testing.T) {
		w := dialWSBatched(t, s.url)
		w.write(cliFrame(true, opText, batchOf(1<<20, `[6,{},"wamp.close.close_realm"]`)))
		m, err := w.readMsg(30 * time.Second)
		if err != nil || !bytes.HasPrefix(m, []byte("[6,")) {
			t.Fatalf("GOODBYE: %q %v", m, err)
		}
		w.write(cliFrame(true, opClose, []byte{0x03, 0xe8}))
		waitClosed(t, w.c, ioTimeout)
		got := synced("sync1")
		if !slices.Contains(got, "first") || slices.Contains(got, "last") {
			t.Errorf("events %q: want the batch's first, not its last (after the GOODBYE)", got)
		}
	})
}
