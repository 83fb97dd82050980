package loop

import (
	"bytes"
	"context"
	"crypto/rand"
	"math/big"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
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
