package loop

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// testMask is the masking key of the client frames the tests build; it is
// not symmetric, so a parser that applies it at the wrong offset fails.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// wsFrame builds a client frame from its first octet (FIN, RSV, opcode), a
// mask flag and a payload, with the shortest length encoding.
func wsFrame(b0 byte, masked bool, payload []byte) []byte {
	var out []byte
	var b1 byte
	if masked {
		b1 = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, b0, b1|byte(n))
	case n <= 0xffff:
		out = append(out, b0, b1|126, byte(n>>8), byte(n))
	default:
		out = append(out, b0, b1|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	if !masked {
		return append(out, payload...)
	}
	out = append(out, testMask[:]...)
	start := len(out)
	out = append(out, payload...)
	ws.Cipher(out[start:], testMask, 0)
	return out
}

// cframe builds a masked client frame with no RSV bits.
func cframe(fin bool, op ws.OpCode, payload string) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	return wsFrame(b0, true, []byte(payload))
}

// closeBody is a close frame body: a status code and a reason.
func closeBody(code uint16, reason string) string {
	return string([]byte{byte(code >> 8), byte(code)}) + reason
}

// wsRec is a copy of a wsEvent that outlives the input buffer.
type wsRec struct {
	kind    wsEventKind
	op      ws.OpCode
	payload string
	code    ws.StatusCode
}

// drainWS reads events from in until the reader needs more bytes or fails,
// discarding each frame after recording it, as the engine does.
func drainWS(t testing.TB, r *wsReader, in *inBuf) ([]wsRec, error) {
	t.Helper()
	var out []wsRec
	for {
		before := in.InboundBuffered()
		ev, n, err := r.next(in)
		if err != nil {
			return out, err
		}
		if n == 0 {
			if ev.kind != wsNone || in.InboundBuffered() != before {
				t.Fatalf("need-more returned %+v and consumed bytes", ev)
			}
			return out, nil
		}
		if n > before {
			t.Fatalf("n = %d > %d buffered", n, before)
		}
		checkWSEvent(t, r, ev)
		if ev.kind != wsNone {
			out = append(out, wsRec{ev.kind, ev.op, string(ev.payload), ev.code})
		}
		in.Discard(n)
	}
}

// checkWSEvent checks what every event must satisfy, whatever the input.
func checkWSEvent(t testing.TB, r *wsReader, ev wsEvent) {
	t.Helper()
	if cap(r.frag) > r.limit() {
		t.Fatalf("reassembly buffer capacity %d over the limit %d", cap(r.frag), r.limit())
	}
	switch ev.kind {
	case wsNone:
		if !r.partial() && ev.payload != nil {
			t.Fatalf("wsNone with a payload")
		}
	case wsMessage:
		if ev.op != ws.OpText && ev.op != ws.OpBinary {
			t.Fatalf("message with opcode %v", ev.op)
		}
		if len(ev.payload) > r.limit() {
			t.Fatalf("message of %d octets over the limit %d", len(ev.payload), r.limit())
		}
		if ev.op == ws.OpText && !utf8.Valid(ev.payload) {
			t.Fatalf("text message not UTF-8")
		}
	case wsPing, wsPong:
		if len(ev.payload) > wsMaxControlPayload {
			t.Fatalf("control payload of %d octets", len(ev.payload))
		}
	case wsClose:
		if ev.code == ws.StatusNoStatusRcvd && len(ev.payload) != 0 || !wsValidCloseCode(ev.code) && ev.code != ws.StatusNoStatusRcvd {
			t.Fatalf("close %d %q", ev.code, ev.payload)
		}
		if len(ev.payload) > wsMaxControlPayload-2 || !utf8.Valid(ev.payload) {
			t.Fatalf("close reason %q", ev.payload)
		}
	default:
		t.Fatalf("event kind %d", ev.kind)
	}
}

// feedWS runs data through a fresh reader in the given chunks and returns
// every event and the first error.
func feedWS(t testing.TB, maxMessage int, chunks ...[]byte) ([]wsRec, error) {
	t.Helper()
	r := &wsReader{maxMessage: maxMessage}
	total := 0
	for _, c := range chunks {
		total += len(c)
	}
	in := newInBuf(max(total, maxMessage+wsMaxClientHeader))
	var all []wsRec
	for _, c := range chunks {
		if _, err := in.write(c); err != nil {
			t.Fatalf("write: %v", err)
		}
		evs, err := drainWS(t, r, in)
		all = append(all, evs...)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// byteChunks splits b into 1-byte chunks.
func byteChunks(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

// checkSplits feeds data whole, split at every offset (for long inputs: the
// first and last 300 offsets and 300 random ones), and one byte at a time,
// and requires the same events and error every time.
func checkSplits(t *testing.T, maxMessage int, data []byte, want []wsRec, wantErr error) {
	t.Helper()
	check := func(how string, got []wsRec, err error) {
		t.Helper()
		if !errors.Is(err, wantErr) {
			t.Fatalf("%s: err = %v, want %v", how, err, wantErr)
		}
		if !equalRecs(got, want) {
			t.Fatalf("%s: events\n got %+v\nwant %+v", how, got, want)
		}
	}
	got, err := feedWS(t, maxMessage, data)
	check("whole", got, err)
	for _, i := range splitOffsets(len(data)) {
		got, err := feedWS(t, maxMessage, data[:i], data[i:])
		check("split", got, err)
	}
	got, err = feedWS(t, maxMessage, byteChunks(data)...)
	check("bytewise", got, err)
}

// splitOffsets returns the offsets 1..n-1 at which to split an n-byte
// input: all of them up to 1000 bytes; else the first and last k and k
// random ones (k = 300, or 50 above 10,000 bytes), to keep the quadratic
// cost of split tests bounded (the bytewise feed still covers every offset).
func splitOffsets(n int) []int {
	var out []int
	if n <= 1000 {
		for i := 1; i < n; i++ {
			out = append(out, i)
		}
		return out
	}
	k := 300
	if n > 10000 {
		k = 50
	}
	for i := 1; i <= k; i++ {
		out = append(out, i, n-i)
	}
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	for range k {
		out = append(out, 1+rng.IntN(n-1))
	}
	return out
}

func equalRecs(a, b []wsRec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestWSReaderFrames(t *testing.T) {
	big := strings.Repeat("é", 40000) // 80000 octets: 64-bit length form
	tests := []struct {
		name string
		data []byte
		want []wsRec
	}{
		{"text", cframe(true, ws.OpText, "hello"),
			[]wsRec{{wsMessage, ws.OpText, "hello", 0}}},
		{"empty text", cframe(true, ws.OpText, ""),
			[]wsRec{{wsMessage, ws.OpText, "", 0}}},
		{"binary 16-bit length", cframe(true, ws.OpBinary, strings.Repeat("\xff", 300)),
			[]wsRec{{wsMessage, ws.OpBinary, strings.Repeat("\xff", 300), 0}}},
		{"text 64-bit length", cframe(true, ws.OpText, big),
			[]wsRec{{wsMessage, ws.OpText, big, 0}}},
		{"ping pong", cat(cframe(true, ws.OpPing, "p1"), cframe(true, ws.OpPong, "")),
			[]wsRec{{wsPing, ws.OpPing, "p1", 0}, {wsPong, ws.OpPong, "", 0}}},
		{"close with status", cframe(true, ws.OpClose, closeBody(1000, "bye")),
			[]wsRec{{wsClose, ws.OpClose, "bye", 1000}}},
		{"close without status", cframe(true, ws.OpClose, ""),
			[]wsRec{{wsClose, ws.OpClose, "", ws.StatusNoStatusRcvd}}},
		{"fragments with ping between", cat(
			cframe(false, ws.OpText, "Hel"),
			cframe(true, ws.OpPing, "are you there"),
			cframe(false, ws.OpContinuation, "lo, "),
			cframe(true, ws.OpContinuation, "world")),
			[]wsRec{{wsPing, ws.OpPing, "are you there", 0}, {wsMessage, ws.OpText, "Hello, world", 0}}},
		{"fragments split a code point", cat(
			cframe(false, ws.OpText, "h\xc3"),
			cframe(false, ws.OpContinuation, "\xa9llo w\xc3\xb6"),
			cframe(true, ws.OpContinuation, "rld")),
			[]wsRec{{wsMessage, ws.OpText, "héllo wörld", 0}}},
		{"empty fragments", cat(
			cframe(false, ws.OpBinary, ""),
			cframe(true, ws.OpContinuation, "")),
			[]wsRec{{wsMessage, ws.OpBinary, "", 0}}},
		{"message after fragmented message", cat(
			cframe(false, ws.OpBinary, "ab"),
			cframe(true, ws.OpContinuation, "c"),
			cframe(true, ws.OpText, "next")),
			[]wsRec{{wsMessage, ws.OpBinary, "abc", 0}, {wsMessage, ws.OpText, "next", 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkSplits(t, 1<<20, tt.data, tt.want, nil)
		})
	}
}

func TestWSReaderValidCloseCodes(t *testing.T) {
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		got, err := feedWS(t, 1024, cframe(true, ws.OpClose, closeBody(code, "ok")))
		if err != nil || len(got) != 1 || got[0].code != ws.StatusCode(code) {
			t.Errorf("close %d: events %+v, err %v", code, got, err)
		}
	}
}

func TestWSReaderProtocolErrors(t *testing.T) {
	const limit = 1000
	tests := []struct {
		name string
		data []byte
		want *wsCloseErr
	}{
		{"unmasked", wsFrame(0x81, false, []byte("hi")), errWSUnmasked},
		{"rsv1", wsFrame(0x80|0x40|byte(ws.OpText), true, []byte("hi")), errWSReservedBits},
		{"rsv3", wsFrame(0x80|0x10|byte(ws.OpBinary), true, nil), errWSReservedBits},
		{"reserved data opcode", wsFrame(0x83, true, nil), errWSReservedOp},
		{"reserved control opcode", wsFrame(0x8b, true, nil), errWSReservedOp},
		{"ping over 125", cframe(true, ws.OpPing, strings.Repeat("x", 126)), errWSControlTooLong},
		{"ping not final", cframe(false, ws.OpPing, "x"), errWSControlFragmented},
		{"close not final", cframe(false, ws.OpClose, ""), errWSControlFragmented},
		{"continuation first", cframe(true, ws.OpContinuation, "x"), errWSUnexpectedContinuation},
		{"text inside fragments", cat(cframe(false, ws.OpText, "a"), cframe(true, ws.OpText, "b")), errWSExpectedContinuation},
		{"binary inside fragments", cat(cframe(false, ws.OpText, "a"), cframe(false, ws.OpBinary, "b")), errWSExpectedContinuation},
		{"invalid utf-8", cframe(true, ws.OpText, "bad \xff"), errWSInvalidUTF8},
		{"truncated code point at end", cat(cframe(false, ws.OpText, "ok"), cframe(true, ws.OpContinuation, "\xe2\x82")), errWSInvalidUTF8},
		{"surrogate", cframe(true, ws.OpText, "\xed\xa0\x80"), errWSInvalidUTF8},
		{"close length 1", cframe(true, ws.OpClose, "\x03"), errWSCloseLength},
		{"close code 999", cframe(true, ws.OpClose, closeBody(999, "")), errWSCloseCode},
		{"close code 1004", cframe(true, ws.OpClose, closeBody(1004, "")), errWSCloseCode},
		{"close code 1005", cframe(true, ws.OpClose, closeBody(1005, "")), errWSCloseCode},
		{"close code 1006", cframe(true, ws.OpClose, closeBody(1006, "")), errWSCloseCode},
		{"close code 1015", cframe(true, ws.OpClose, closeBody(1015, "")), errWSCloseCode},
		{"close code 2999", cframe(true, ws.OpClose, closeBody(2999, "")), errWSCloseCode},
		{"close code 5000", cframe(true, ws.OpClose, closeBody(5000, "")), errWSCloseCode},
		{"close reason not utf-8", cframe(true, ws.OpClose, closeBody(1000, "\xc0\xaf")), errWSCloseReason},
		{"message too big", cframe(true, ws.OpBinary, strings.Repeat("x", limit+1)), errWSTooBig},
		{"fragments too big", cat(
			cframe(false, ws.OpBinary, strings.Repeat("x", limit/2)),
			cframe(false, ws.OpContinuation, strings.Repeat("x", limit/2)),
			cframe(true, ws.OpContinuation, "x")), errWSTooBig},
		{"2^63 length", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, errWSTooBig},
		{"2^64-1 length", []byte{0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, errWSTooBig},
	}
	wantCode := map[*wsCloseErr]ws.StatusCode{
		errWSInvalidUTF8: 1007, errWSCloseReason: 1007, errWSTooBig: 1009,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkSplits(t, limit, tt.data, nil, tt.want)
			code := wantCode[tt.want]
			if code == 0 {
				code = ws.StatusProtocolError
			}
			if tt.want.code != code {
				t.Errorf("close code %d, want %d", tt.want.code, code)
			}
		})
	}
}

// TestWSReaderTooBigBeforePayload: the limit is enforced from the header
// alone, without waiting for (or buffering) the payload.
func TestWSReaderTooBigBeforePayload(t *testing.T) {
	hdr := cframe(true, ws.OpBinary, strings.Repeat("x", 70000))[:14]
	_, err := feedWS(t, 65536, hdr)
	if err != errWSTooBig {
		t.Fatalf("err = %v, want errWSTooBig", err)
	}
	// The 10 length octets suffice; the masking key is not needed.
	_, err = feedWS(t, 65536, hdr[:10])
	if err != errWSTooBig {
		t.Fatalf("without mask: err = %v, want errWSTooBig", err)
	}
}

// TestWSReaderHugeLengthNoAlloc: a 10-byte frame declaring 2^63 octets is
// refused with 1009 without allocating.
func TestWSReaderHugeLengthNoAlloc(t *testing.T) {
	in := newInBuf(64)
	in.write([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0})
	r := &wsReader{maxMessage: 1 << 20}
	var err error
	allocs := testing.AllocsPerRun(100, func() { _, _, err = r.next(in) })
	if err != errWSTooBig {
		t.Fatalf("err = %v", err)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations, want 0", allocs)
	}
}

func TestWSReaderZeroCopyAndNoAlloc(t *testing.T) {
	in := newInBuf(1 << 12)
	frame := cframe(true, ws.OpText, strings.Repeat("a", 1000))
	r := &wsReader{}
	allocs := testing.AllocsPerRun(100, func() {
		in.write(frame)
		ev, n, err := r.next(in)
		if err != nil || ev.kind != wsMessage || n != len(frame) {
			t.Fatalf("ev %v n %d err %v", ev.kind, n, err)
		}
		peek, _ := in.Peek(n)
		if &ev.payload[0] != &peek[n-1000] {
			t.Fatal("payload does not alias the input")
		}
		in.Discard(n)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per frame, want 0", allocs)
	}
}

// TestWSReaderLargeFragmented: a 3 MiB message in 3 fragments, fed in random
// chunks of 1 to 7000 bytes; the reassembly buffer stays within the limit.
func TestWSReaderLargeFragmented(t *testing.T) {
	const limit = 4 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	msg := make([]byte, 3<<20)
	for i := range msg {
		msg[i] = byte(rng.Uint32())
	}
	third := len(msg) / 3
	data := cat(
		wsFrame(byte(ws.OpBinary), true, msg[:third]),
		wsFrame(byte(ws.OpContinuation), true, msg[third:2*third]),
		wsFrame(0x80|byte(ws.OpContinuation), true, msg[2*third:]))
	r := &wsReader{maxMessage: limit}
	in := newInBuf(limit + wsMaxClientHeader)
	var got [][]byte
	for off := 0; off < len(data); {
		n := min(1+rng.IntN(7000), len(data)-off)
		in.write(data[off : off+n])
		off += n
		for {
			ev, n, err := r.next(in)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if cap(r.frag) > limit {
				t.Fatalf("reassembly capacity %d over the limit", cap(r.frag))
			}
			if ev.kind == wsMessage {
				got = append(got, ev.payload)
			}
			in.Discard(n)
		}
	}
	if len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("got %d messages, want the 3 MiB message once", len(got))
	}
	if r.frag != nil || r.partial() {
		t.Fatal("reader still holds the reassembly buffer")
	}
}

// TestWSReaderLimitExact: a fragmented message of exactly the limit passes
// and its buffer is no larger than the limit.
func TestWSReaderLimitExact(t *testing.T) {
	const limit = 3000
	data := cat(
		cframe(false, ws.OpBinary, strings.Repeat("a", 1000)),
		cframe(false, ws.OpContinuation, strings.Repeat("b", 1000)),
		cframe(true, ws.OpContinuation, strings.Repeat("c", 1000)))
	r := &wsReader{maxMessage: limit}
	in := newInBuf(2 * limit)
	in.write(data)
	for {
		ev, n, err := r.next(in)
		if err != nil || n == 0 {
			t.Fatalf("n %d err %v", n, err)
		}
		in.Discard(n)
		if ev.kind == wsMessage {
			if len(ev.payload) != limit || cap(ev.payload) > limit {
				t.Fatalf("len %d cap %d", len(ev.payload), cap(ev.payload))
			}
			return
		}
	}
}

// TestWSReaderControlAtLimit: control frames between fragments do not
// count towards the message limit.
func TestWSReaderControlAtLimit(t *testing.T) {
	const limit = 200
	data := cat(
		cframe(false, ws.OpText, strings.Repeat("a", limit-1)),
		cframe(true, ws.OpPing, strings.Repeat("p", 125)),
		cframe(true, ws.OpClose, closeBody(1000, strings.Repeat("c", 123))),
		cframe(true, ws.OpContinuation, "z"))
	want := []wsRec{
		{wsPing, ws.OpPing, strings.Repeat("p", 125), 0},
		{wsClose, ws.OpClose, strings.Repeat("c", 123), 1000},
		{wsMessage, ws.OpText, strings.Repeat("a", limit-1) + "z", 0},
	}
	checkSplits(t, limit, data, want, nil)
}

func TestAppendWSHeader(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xffff, 0x10000, 3 << 20} {
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpPong, ws.OpClose} {
			var want bytes.Buffer
			if err := ws.WriteHeader(&want, ws.Header{Fin: true, OpCode: op, Length: int64(n)}); err != nil {
				t.Fatal(err)
			}
			got := appendWSHeader(nil, op, n)
			if !bytes.Equal(got, want.Bytes()) || len(got) > wsMaxServerHeader {
				t.Errorf("op %v n %d: % x, want % x", op, n, got, want.Bytes())
			}
		}
	}
	frame := appendWSFrame([]byte("x"), ws.OpBinary, []byte("payload"))
	if string(frame) != "x\x82\x07payload" {
		t.Errorf("appendWSFrame: %q", frame)
	}
}

func TestAppendWSClose(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 octets: must be cut at a rune boundary
	tests := []struct {
		code   ws.StatusCode
		reason string
		body   string
	}{
		{1000, "bye", closeBody(1000, "bye")},
		{1009, "", closeBody(1009, "")},
		{ws.StatusNoStatusRcvd, "ignored", ""},
		{0, "", ""},
		{1002, long, closeBody(1002, long[:122])},
	}
	for _, tt := range tests {
		got := appendWSClose(nil, tt.code, tt.reason)
		f, err := readFrameRef(got)
		if err != nil {
			t.Fatalf("%d: %v", tt.code, err)
		}
		if !f.Header.Fin || f.Header.OpCode != ws.OpClose || f.Header.Masked || string(f.Payload) != tt.body {
			t.Errorf("%d %q: header %+v body %q, want %q", tt.code, tt.reason, f.Header, f.Payload, tt.body)
		}
		// Our own reader accepts what we send (after masking, as a client would).
		if len(f.Payload) > 0 {
			if _, err := feedWS(t, 1024, wsFrame(0x88, true, f.Payload)); err != nil {
				t.Errorf("%d: our close frame does not parse: %v", tt.code, err)
			}
		}
	}
}

func TestInBuf(t *testing.T) {
	b := newInBuf(10)
	if _, err := b.Peek(1); err != io.ErrShortBuffer {
		t.Fatalf("Peek on empty: %v", err)
	}
	if n, err := b.write([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("write: %d %v", n, err)
	}
	if p, _ := b.Peek(3); string(p) != "hel" {
		t.Fatalf("Peek(3) = %q", p)
	}
	if _, err := b.Peek(6); err != io.ErrShortBuffer {
		t.Fatalf("Peek(6) = %v", err)
	}
	if p, _ := b.Peek(0); string(p) != "hello" {
		t.Fatalf("Peek(0) = %q, want everything (gnet semantics)", p)
	}
	b.Discard(2)
	if n, err := b.write([]byte("0123456789")); n != 7 || err != errInBufFull {
		t.Fatalf("write past the cap: %d %v", n, err)
	}
	if p, _ := b.Peek(10); string(p) != "llo0123456" || len(b.buf) > 10 {
		t.Fatalf("after compaction: %q (backing %d)", p, len(b.buf))
	}
	if n, err := b.readFrom(strings.NewReader("x"), 0); n != 0 || err != errInBufFull {
		t.Fatalf("readFrom when full: %d %v", n, err)
	}
	if n, _ := b.Discard(0); n != 10 || b.InboundBuffered() != 0 {
		t.Fatalf("Discard(0) must discard everything (gnet semantics): %d", n)
	}
	if n, err := b.readFrom(strings.NewReader("abcdef"), 4); n != 4 || err != nil {
		t.Fatalf("readFrom chunk: %d %v", n, err)
	}
	if b.release() {
		t.Fatal("release with buffered bytes")
	}
	b.Discard(4)
	if !b.release() || b.buf != nil {
		t.Fatal("release when empty")
	}
}

func TestInBufGrowth(t *testing.T) {
	const capacity = 100 << 10
	b := newInBuf(capacity)
	rng := rand.New(rand.NewPCG(3, 4))
	var want, got []byte
	for len(got) < 1<<20 {
		chunk := make([]byte, rng.IntN(9000))
		for i := range chunk {
			chunk[i] = byte(rng.Uint32())
		}
		n, _ := b.write(chunk)
		want = append(want, chunk[:n]...)
		if len(b.buf) > capacity {
			t.Fatalf("backing array %d over the cap", len(b.buf))
		}
		take := rng.IntN(b.InboundBuffered() + 1)
		if take > 0 {
			p, _ := b.Peek(take)
			got = append(got, p...)
			b.Discard(take)
		}
	}
	if !bytes.Equal(got, want[:len(got)]) {
		t.Fatal("bytes out differ from bytes in")
	}
}

// readFrameRef parses one frame we wrote with gobwas/ws, the reference:
// ReadHeader, then the payload, bounded (ws.ReadFrame, which trusts the
// declared length, is deprecated).
func readFrameRef(b []byte) (ws.Frame, error) {
	r := bytes.NewReader(b)
	h, err := ws.ReadHeader(r)
	if err != nil {
		return ws.Frame{}, err
	}
	if h.Length > int64(len(b)) {
		return ws.Frame{}, io.ErrUnexpectedEOF
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return ws.Frame{}, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return ws.Frame{Header: h, Payload: p}, nil
}
