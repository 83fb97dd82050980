package load

import (
	"bytes"
	"testing"

	"github.com/edgewamp/edgewamp/bench/internal/wire"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// recorder is a role that records what it sees.
type recorder struct {
	joins int
	types []proto.Code
	ends  []error
}

func (r *recorder) joined(*sess, int64) { r.joins++ }
func (r *recorder) message(_ *sess, typ proto.Code, _, _ uint64, _ []byte, _ int64) {
	r.types = append(r.types, typ)
}
func (r *recorder) ended(_ *sess, err error) { r.ends = append(r.ends, err) }

// routerSide plays the router: it frames messages as a server does and
// reads what the session wrote.
type routerSide struct {
	t  *testing.T
	ep *endpoint
}

func (rs routerSide) frame(m *proto.Message) []byte {
	rs.t.Helper()
	b, err := proto.Append(nil, rs.ep.ser, m)
	if err != nil {
		rs.t.Fatal(err)
	}
	f := wire.Framer{WS: rs.ep.ws, Ser: rs.ep.ser} // server frames: unmasked
	return f.Append(nil, b)
}

// read decodes every message the session queued, checking client framing
// (masked WebSocket frames).
func (rs routerSide) read(out []byte) []*proto.Message {
	rs.t.Helper()
	var msgs []*proto.Message
	for len(out) > 0 {
		var p []byte
		if rs.ep.ws {
			h, n, err := wire.ParseFrameHeader(out)
			if err != nil || n == 0 || !h.Masked || len(out) < n+h.Len {
				rs.t.Fatalf("client frame: %+v %d %v", h, n, err)
			}
			p = append([]byte(nil), out[n:n+h.Len]...)
			wire.MaskBytes(p, h.Mask, 0)
			out = out[n+h.Len:]
			if h.Op != wire.OpBinary && h.Op != wire.OpText {
				msgs = append(msgs, &proto.Message{Type: proto.Code(1000 + int(h.Op))}) // control frame marker
				continue
			}
		} else {
			_, n, ok, err := wire.ParseRawHeader(out)
			if !ok || err != nil {
				rs.t.Fatalf("raw frame: %v", err)
			}
			p, out = out[4:4+n], out[4+n:]
		}
		m, err := proto.Decode(rs.ep.ser, p)
		if err != nil {
			rs.t.Fatalf("decode %q: %v", p, err)
		}
		msgs = append(msgs, m.Clone())
	}
	return msgs
}

// feed gives b to the session one byte at a time (every split point).
func feed(s *sess, b []byte) {
	var pending []byte
	for i := range b {
		pending = append(pending, b[i])
		n := s.input(pending, 1)
		pending = pending[n:]
	}
}

func TestSessionJoinCRA(t *testing.T) {
	for _, url := range []string{"ws://127.0.0.1:1/ws", "rs://127.0.0.1:1"} {
		for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
			ep, err := newEndpoint(url, ser, "realm1", "bench", "s3cret")
			if err != nil {
				t.Fatal(err)
			}
			rs := routerSide{t, ep}
			rec := &recorder{}
			s := newSess(ep, rec)
			s.start()
			var in []byte
			if ep.ws {
				if !bytes.HasPrefix(s.out, []byte("GET /ws HTTP/1.1\r\n")) || !bytes.Contains(s.out, []byte("wamp.2."+ser.String())) {
					t.Fatalf("upgrade request %q", s.out)
				}
				req, _, err := wire.ParseUpgradeRequest(s.out)
				if err != nil {
					t.Fatal(err)
				}
				in = wire.AppendUpgradeResponse(nil, req.Key, ser)
			} else {
				hs := wire.RawHandshake(ser, 0xf)
				if !bytes.Equal(s.out, hs[:]) {
					t.Fatalf("rawsocket handshake % x", s.out)
				}
				in = []byte{wire.RawMagic, 0xf0 | byte(ser), 0, 0}
			}
			s.out = s.out[:0]
			feed(s, in)
			hello := rs.read(s.out)
			s.out = s.out[:0]
			if len(hello) != 1 || hello[0].Type != proto.CodeHello || string(hello[0].URI) != "realm1" || hello[0].Opt.String(proto.KeyAuthID) != "bench" {
				t.Fatalf("%s %s: HELLO %+v", url, ser, hello)
			}
			extra, _ := proto.EncodeValue(ser, map[string]any{"challenge": `{"nonce":"abc"}`})
			feed(s, rs.frame(&proto.Message{Type: proto.CodeChallenge, URI: []byte("wampcra"), Dict: extra}))
			auth := rs.read(s.out)
			s.out = s.out[:0]
			if len(auth) != 1 || auth[0].Type != proto.CodeAuthenticate || string(auth[0].URI) != route.CRASignature("s3cret", `{"nonce":"abc"}`) {
				t.Fatalf("%s %s: AUTHENTICATE %+v", url, ser, auth)
			}
			// Two messages in one read, then a GOODBYE exchange.
			both := append(rs.frame(&proto.Message{Type: proto.CodeWelcome, ID: 5}), rs.frame(&proto.Message{Type: proto.CodeEvent, ID: 1, ID2: 2})...)
			feed(s, both)
			if rec.joins != 1 || s.sid != 5 || len(rec.types) != 1 || rec.types[0] != proto.CodeEvent {
				t.Fatalf("%s %s: joins %d sid %d types %v", url, ser, rec.joins, s.sid, rec.types)
			}
			s.leave()
			bye := rs.read(s.out)
			if len(bye) != 1 || bye[0].Type != proto.CodeGoodbye || string(bye[0].URI) != proto.CloseNormal {
				t.Fatalf("GOODBYE %+v", bye)
			}
			feed(s, rs.frame(&proto.Message{Type: proto.CodeGoodbye, URI: []byte(proto.CloseGoodbyeAndOut)}))
			if s.st != stDone || s.err != nil {
				t.Fatalf("after GOODBYE: state %d err %v", s.st, s.err)
			}
			s.closed(nil)
			if len(rec.ends) != 1 || rec.ends[0] != nil {
				t.Fatalf("ends %v", rec.ends)
			}
		}
	}
}

func TestSessionControlFrames(t *testing.T) {
	ep, _ := newEndpoint("ws://127.0.0.1:1/ws", proto.JSON, "realm1", "", "")
	rs := routerSide{t, ep}
	rec := &recorder{}
	s := newSess(ep, rec)
	s.st = stOpen
	// A ping between the fragments of a message.
	msg, _ := proto.Append(nil, proto.JSON, &proto.Message{Type: proto.CodeResult, Request: 9})
	var in []byte
	in = append(in, 0x01, byte(3)) // text, not final
	in = append(in, msg[:3]...)
	in = append(in, 0x89, 2, 'h', 'i') // ping
	in = append(in, 0x80, byte(len(msg)-3))
	in = append(in, msg[3:]...)
	feed(s, in)
	if len(rec.types) != 1 || rec.types[0] != proto.CodeResult {
		t.Fatalf("types %v", rec.types)
	}
	out := rs.read(s.out)
	if len(out) != 1 || out[0].Type != proto.Code(1000+wire.OpPong) {
		t.Fatalf("pong: %v", out)
	}
	// ABORT ends the session with its reason.
	s2 := newSess(ep, &recorder{})
	s2.st = stJoin
	feed(s2, rs.frame(&proto.Message{Type: proto.CodeAbort, URI: []byte("wamp.error.no_such_realm")}))
	if s2.st != stDone || s2.abort != "wamp.error.no_such_realm" {
		t.Fatalf("abort: %d %q", s2.st, s2.abort)
	}
}

func TestHistQuantiles(t *testing.T) {
	var h Hist
	for v := int64(1); v <= 100000; v++ {
		h.Record(v * 1000) // 1 µs .. 100 ms, uniform
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0.5, 50_000_000}, {0.99, 99_000_000}, {0.999, 99_900_000}} {
		got := h.Quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d > 0.016 || d < -0.016 {
			t.Errorf("q%.3f = %d, want %d ±1.6%%", c.q, got, c.want)
		}
	}
	if h.Max() != 100_000_000 || h.Count() != 100000 {
		t.Errorf("max %d count %d", h.Max(), h.Count())
	}
	for v := int64(0); v < 1<<20; v += 37 {
		if i := histIndex(v); i < 0 || i >= histBuckets || (v >= histExact && (histValue(i) < v/2 || histValue(i) > v*2)) {
			t.Fatalf("index %d for %d", i, v)
		}
	}
}

func TestParseSources(t *testing.T) {
	a, err := parseSources("127.0.0.2-127.0.0.4,127.1.0.1")
	if err != nil || len(a) != 4 || a[0].String() != "127.0.0.2" || a[2].String() != "127.0.0.4" || a[3].String() != "127.1.0.1" {
		t.Fatalf("%v %v", a, err)
	}
	if _, err := parseSources("127.0.0.9-127.0.0.1"); err == nil {
		t.Fatal("reversed range accepted")
	}
	if _, err := parseSources("10.0.0.1"); err == nil {
		t.Fatal("non-loopback source accepted")
	}
	if _, err := newEndpoint("ws://192.0.2.1:8080/ws", proto.JSON, "realm1", "", ""); err == nil {
		t.Fatal("non-loopback router accepted")
	}
	if _, err := newEndpoint("rs://localhost:8080", proto.JSON, "realm1", "", ""); err != nil {
		t.Fatalf("localhost refused: %v", err)
	}
}

func TestResultLine(t *testing.T) {
	var r Result
	r.Set("scenario", "rpc")
	r.Set("calls_per_s", 1234.5678)
	r.Set("note", "two words")
	r.Set("zero", 0.0)
	line := r.String()
	if line != "RESULT scenario=rpc calls_per_s=1234.568 note=two_words zero=0" {
		t.Fatalf("%q", line)
	}
	m, ok := ParseResult(line)
	if !ok || m["calls_per_s"] != "1234.568" {
		t.Fatalf("%v", m)
	}
}

// WAMP-Ticket with OAuth2 tokens: HELLO offers ticket without an authid,
// and sessions hand out the tickets in turn.
func TestSessionJoinTicket(t *testing.T) {
	ep, err := newTicketEndpoint("rs://127.0.0.1:1", proto.MsgPack, "realm1", []string{"tok-a", "tok-b"})
	if err != nil {
		t.Fatal(err)
	}
	rs := routerSide{t, ep}
	for i, want := range []string{"tok-a", "tok-b", "tok-a"} {
		s := newSess(ep, &recorder{})
		s.start()
		s.out = s.out[:0]
		feed(s, []byte{wire.RawMagic, 0xf0 | byte(proto.MsgPack), 0, 0})
		hello := rs.read(s.out)
		s.out = s.out[:0]
		methods := hello[0].Opt.Strings(proto.KeyAuthMethods, nil)
		if len(hello) != 1 || hello[0].Opt.String(proto.KeyAuthID) != "" || len(methods) != 1 || string(methods[0]) != "ticket" {
			t.Fatalf("HELLO %+v", hello)
		}
		feed(s, rs.frame(&proto.Message{Type: proto.CodeChallenge, URI: []byte("ticket")}))
		auth := rs.read(s.out)
		if len(auth) != 1 || auth[0].Type != proto.CodeAuthenticate || string(auth[0].URI) != want {
			t.Fatalf("session %d: AUTHENTICATE %+v, want ticket %s", i, auth, want)
		}
	}
	if _, err := newTicketEndpoint("rs://127.0.0.1:1", proto.MsgPack, "realm1", nil); err == nil {
		t.Fatal("an endpoint without tickets")
	}
}
