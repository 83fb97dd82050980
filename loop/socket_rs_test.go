package loop

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// The RawSocket handshake and frames, written one byte per segment.
func TestSocketRSByteByByte(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	c := dialTCP(t, s.url, 0)
	r := &rsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack, autoPong: true}
	writeSlowly(t, c, rsHandshake(proto.MsgPack, 15))
	r.expectHandshake()
	if r.maxLen != 16<<20 {
		t.Fatalf("router announced %d, want 16 MiB (MaxMessage default)", r.maxLen)
	}
	p := newWAMP(t, r, proto.MsgPack)
	writeSlowly(t, c, rsFrame(0, helloMsg(t, proto.MsgPack)))
	p.expect(proto.CodeWelcome)
	// A PING dribbled too, then a SUBSCRIBE.
	writeSlowly(t, c, rsFrame(1, []byte("xy")))
	typ, pl, err := r.readFrame(ioTimeout)
	if err != nil || typ != 2 || string(pl) != "xy" {
		t.Fatalf("want PONG xy, got %d %q %v", typ, pl, err)
	}
	writeSlowly(t, c, rsFrame(0, encodeMsg(t, proto.MsgPack, &proto.Message{
		Type: proto.CodeSubscribe, Request: 7, Dict: emptyDict(t, proto.MsgPack), URI: []byte("com.slow")})))
	if m := p.expect(proto.CodeSubscribed); m.Request != 7 {
		t.Fatalf("SUBSCRIBED for %d", m.Request)
	}
}

// PING is answered by exactly one PONG with the same payload, before and
// after the session is joined, and with an empty or a large payload.
func TestSocketRSPing(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	r := dialRS(t, s.url, proto.JSON, 15)
	big := make([]byte, 100<<10)
	rand.Read(big)
	for i, payload := range [][]byte{[]byte("before hello"), nil, big} {
		r.write(rsFrame(1, payload))
		typ, pl, err := r.readFrame(ioTimeout)
		if err != nil || typ != 2 || !bytes.Equal(pl, payload) {
			t.Fatalf("ping %d: got type %d, %d bytes, %v", i, typ, len(pl), err)
		}
	}
	p := newWAMP(t, r, proto.JSON)
	p.join()
	// Two pings in one segment, with a message between: answered in order.
	r.write(append(append(rsFrame(1, []byte("one")), rsFrame(0, encodeMsg(t, proto.JSON, &proto.Message{
		Type: proto.CodeSubscribe, Request: 1, Dict: emptyDict(t, proto.JSON), URI: []byte("com.x")}))...),
		rsFrame(1, []byte("two"))...))
	var got []string
	for len(got) < 3 {
		typ, pl, err := r.readFrame(ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case 2:
			got = append(got, "pong "+string(pl))
		case 0:
			m, _ := proto.Decode(proto.JSON, pl)
			got = append(got, m.Type.String())
		}
	}
	if strings.Join(got, ",") != "pong one,SUBSCRIBED,pong two" {
		t.Fatalf("order: %v", got)
	}
}

// The smallest maximum a RawSocket client may announce, 2^9 octets, should
// still allow a session: WELCOME must fit.
func TestSocketRSSmallestMaxLengthJoins(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		r := dialRS(t, s.url, ser, 0)
		p := newWAMP(t, r, ser)
		p.join()
	}
}

// A WELCOME longer than the client's announced maximum is sent in its
// compact form (no feature flags); when even that does not fit (here: a
// 600-character anonymous role), the session is aborted and the transport closed,
// rather than left with a session the router thinks established and the
// client still waiting for WELCOME.
func TestSocketRSControlTooBigCloses(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(_ *Options, rc *route.Config) {
		rc.HelloTimeout = time.Minute
		rc.Realms[0].AnonymousRole = strings.Repeat("x", 600)
	})
	r := dialRS(t, s.url, proto.JSON, 0)
	details, err := proto.EncodeValue(proto.JSON, map[string]any{"roles": map[string]any{"caller": map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	hello, _ := proto.Append(nil, proto.JSON, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: details})
	r.send(hello)
	msg, err := r.readMsg(ioTimeout)
	if err != nil {
		t.Fatalf("want ABORT, got %v", err)
	}
	m, err := proto.Decode(proto.JSON, msg)
	if err != nil || m.Type != proto.CodeAbort || string(m.URI) != proto.URIPayloadSizeExceeded {
		t.Fatalf("want ABORT payload_size_exceeded, got %q (%v)", msg, err)
	}
	r.c.SetReadDeadline(time.Now().Add(ioTimeout))
	var b [1]byte
	if n, err := r.br.Read(b[:]); err == nil || !isClosedErr(err) {
		t.Fatalf("want the connection closed, got %d bytes, %v", n, err)
	}
	eventually(t, ioTimeout, "the session to leave", func() bool { return s.r.SessionCount() == 0 })
}

// A client announcing 2^10 octets never receives a longer message: an EVENT
// longer than that is dropped (counted as EventsTooBig), a RESULT longer
// than that becomes ERROR wamp.error.payload_size_exceeded. (2^10 rather
// than 2^9: see TestSocketRSSmallestMaxLengthJoins.)
func TestSocketRSMaxLengthRespected(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	callee := s.dial("ws", proto.JSON)
	proc := registerEcho(t, callee)
	pub := s.dial("ws", proto.JSON)

	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		r := dialRS(t, s.url, ser, 1) // 2^10 = 1024 octets
		p := newWAMP(t, r, ser)
		// Read every frame ourselves: none may exceed 512 octets.
		var seen []*proto.Message
		readChecked := func() *proto.Message {
			t.Helper()
			for {
				typ, pl, err := r.readFrame(ioTimeout)
				if err != nil {
					t.Fatalf("%s: %v", ser, err)
				}
				if len(pl) > 1024 {
					t.Fatalf("%s: router sent a %d-octet frame to a client that accepts 1024", ser, len(pl))
				}
				if typ != 0 {
					continue
				}
				m, err := proto.Decode(ser, pl)
				if err != nil {
					t.Fatal(err)
				}
				seen = append(seen, m)
				return m
			}
		}
		r.send(helloMsg(t, ser))
		if m := readChecked(); m.Type != proto.CodeWelcome {
			t.Fatalf("%s: got %v (%s), want WELCOME", ser, m.Type, m.URI)
		}
		r.send(encodeMsg(t, ser, &proto.Message{Type: proto.CodeSubscribe, Request: 1,
			Dict: emptyDict(t, ser), URI: []byte("com.big")}))
		if m := readChecked(); m.Type != proto.CodeSubscribed {
			t.Fatalf("%s: got %v", ser, m.Type)
		}
		tooBig := func() uint64 {
			var n uint64
			for i := range s.r.Shards() {
				n += s.r.Shard(i).Stats().EventsTooBig.Load()
			}
			return n
		}
		before := tooBig()
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		ack := &client.PublishOptions{Acknowledge: true}
		if err := pub.Publish(ctx, "com.big", []any{strings.Repeat("x", 1100)}, nil, ack); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, "com.big", []any{"small"}, nil, ack); err != nil {
			t.Fatal(err)
		}
		cancel()
		m := readChecked()
		if m.Type != proto.CodeEvent || args(t, m)[0] != "small" {
			t.Fatalf("%s: want the small EVENT (the big one dropped), got %v %v", ser, m.Type, args(t, m))
		}
		eventually(t, ioTimeout, "EventsTooBig to count the dropped event", func() bool { return tooBig() > before })

		// A call whose result is too long: ERROR payload_size_exceeded.
		r.send(p.callMsg(2, proc, []any{strings.Repeat("y", 1100)}))
		m = readChecked()
		if m.Type != proto.CodeError || m.Request != 2 || string(m.URI) != proto.URIPayloadSizeExceeded {
			t.Fatalf("%s: want ERROR payload_size_exceeded for request 2, got %v %d %q", ser, m.Type, m.Request, m.URI)
		}
		// A result that fits still arrives.
		r.send(p.callMsg(3, proc, []any{"fits"}))
		if m = readChecked(); m.Type != proto.CodeResult || args(t, m)[0] != "fits" {
			t.Fatalf("%s: got %v", ser, m.Type)
		}
	}
}

// A 3 MiB PUBLISH over RawSocket, written in random chunks, reaches a
// WebSocket subscriber intact; the reverse direction (a 3 MiB EVENT to a
// RawSocket subscriber) too.
func TestSocketRSLargeMessage(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	got := make(chan *client.Event, 4)
	sub := s.dial("ws", proto.MsgPack)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if _, err := sub.Subscribe(ctx, "com.large", func(ev *client.Event) { got <- ev }, nil); err != nil {
		t.Fatal(err)
	}
	rsub := dialRS(t, s.url, proto.CBOR, 15)
	ps := newWAMP(t, rsub, proto.CBOR)
	ps.join()
	ps.subscribe("com.large")

	r := dialRS(t, s.url, proto.MsgPack, 15)
	p := newWAMP(t, r, proto.MsgPack)
	p.join()
	big := make([]byte, 3<<20)
	rand.Read(big)
	writeRandomChunks(t, r.write, rsFrame(0, p.publishMsg(1, "com.large", []any{big}, true)))
	p.expect(proto.CodePublished)
	select {
	case ev := <-got:
		if b, ok := ev.Args[0].([]byte); !ok || !bytes.Equal(b, big) {
			t.Fatalf("WebSocket subscriber: payload damaged (%T)", ev.Args[0])
		}
	case <-time.After(ioTimeout):
		t.Fatal("no event")
	}
	m := ps.expect(proto.CodeEvent)
	if b, ok := args(t, m)[0].([]byte); !ok || !bytes.Equal(b, big) {
		t.Fatalf("RawSocket subscriber: payload damaged")
	}
}

// RawSocket's handshake announces the longest message the router takes as
// a power of two (2^9 to 2^24 octets), so a RawSocket client is told, and
// held to, the largest one not above max_message, where a WebSocket client
// gets max_message itself (README: limits.max_message). This pins what the
// README now says; the behaviour is unchanged.
func TestRawSocketMaxMessageIsAPowerOfTwo(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, _ *route.Config) { o.MaxMessage = 1000 })
	roles := map[string]any{"caller": map[string]any{}, "subscriber": map[string]any{}}
	hello := encodeMsg(t, proto.JSON, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"),
		Dict: rawValue(t, proto.JSON, map[string]any{"roles": roles, "agent": strings.Repeat("a", 560)})})
	if len(hello) <= 512 || len(hello) > 1000 {
		t.Fatalf("HELLO of %d bytes", len(hello))
	}
	w := dialWS(t, s.url, proto.JSON)
	w.send(hello)
	newWAMP(t, w, proto.JSON).expect(proto.CodeWelcome)

	r := dialRS(t, s.url, proto.JSON, 15)
	if r.maxLen != 512 {
		t.Fatalf("the handshake reply announces %d bytes, want 512 (max_message 1000)", r.maxLen)
	}
	r.send(hello)
	// The ABORT saying why (TestSocketRSFrameOverLimitAborts), then the
	// close.
	if m := newWAMP(t, r, proto.JSON).expect(proto.CodeAbort); string(m.URI) != proto.URIProtocolViolation {
		t.Fatalf("a %d-byte HELLO: ABORT %s, want %s", len(hello), m.URI, proto.URIProtocolViolation)
	}
	if typ, p, err := r.readFrame(ioTimeout); err == nil {
		t.Fatalf("a frame of type %d (%d bytes) after the ABORT: want the connection closed", typ, len(p))
	}
}
