package loop

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

func TestRawHandshake(t *testing.T) {
	for exp := range uint8(16) {
		for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
			in := newInBuf(16)
			in.write([]byte{0x7f, exp<<4 | byte(ser), 0, 0})
			hs, n, err := readRawHandshake(in)
			if err != nil || n != 4 || hs.ser != ser || hs.maxRecv != 1<<(9+int(exp)) {
				t.Fatalf("L=%d S=%d: %+v n %d err %v", exp, ser, hs, n, err)
			}
		}
	}
}

func TestRawHandshakeErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		err   error
		reply []byte // nil: close without a reply
	}{
		{"serializer 0", []byte{0x7f, 0xf0, 0, 0}, errRawSerializer, []byte{0x7f, 0x10, 0, 0}},
		{"UBJSON", []byte{0x7f, 0x14, 0, 0}, errRawSerializer, []byte{0x7f, 0x10, 0, 0}},
		{"FlatBuffers", []byte{0x7f, 0x15, 0, 0}, errRawSerializer, []byte{0x7f, 0x10, 0, 0}},
		{"serializer 15", []byte{0x7f, 0x1f, 0, 0}, errRawSerializer, []byte{0x7f, 0x10, 0, 0}},
		{"reserved octet 3", []byte{0x7f, 0x11, 1, 0}, errRawReserved, []byte{0x7f, 0x30, 0, 0}},
		{"reserved octet 4", []byte{0x7f, 0x12, 0, 0x80}, errRawReserved, []byte{0x7f, 0x30, 0, 0}},
		{"HTTP", []byte("GET "), errRawMagic, nil},
		{"TLS", []byte{0x16, 0x03, 0x01, 0x00}, errRawMagic, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range len(tt.in) {
				in := newInBuf(16)
				in.write(tt.in[:i])
				if _, n, err := readRawHandshake(in); n != 0 || err != nil {
					t.Fatalf("%d of 4 octets: n %d err %v", i, n, err)
				}
			}
			in := newInBuf(16)
			in.write(tt.in)
			_, n, err := readRawHandshake(in)
			if err != tt.err || n != 4 {
				t.Fatalf("err %v n %d, want %v", err, n, tt.err)
			}
			var hsErr rawHSError
			if errors.As(err, &hsErr) {
				reply := hsErr.reply()
				if !bytes.Equal(reply[:], tt.reply) {
					t.Fatalf("reply % x, want % x", reply, tt.reply)
				}
			} else if tt.reply != nil {
				t.Fatal("no reply for a handshake error")
			}
		})
	}
	if r := rawHandshakeError(uint8(errRawMaxConns)); r != [4]byte{0x7f, 0x40, 0, 0} {
		t.Errorf("max connections reply % x", r)
	}
	if !strings.Contains(errRawMaxConns.Error(), "maximum connection count reached") {
		t.Errorf("errRawMaxConns text %q", errRawMaxConns.Error())
	}
}

func TestRawHandshakeReply(t *testing.T) {
	tests := []struct {
		ser  proto.Serializer
		exp  uint8
		want [4]byte
	}{
		{proto.JSON, 0, [4]byte{0x7f, 0x01, 0, 0}},
		{proto.MsgPack, 15, [4]byte{0x7f, 0xf2, 0, 0}},
		{proto.CBOR, 11, [4]byte{0x7f, 0xb3, 0, 0}},
		{proto.JSON, 200, [4]byte{0x7f, 0xf1, 0, 0}}, // clamped
	}
	for _, tt := range tests {
		if got := rawHandshakeReply(tt.ser, tt.exp); got != tt.want {
			t.Errorf("reply(%v, %d) = % x, want % x", tt.ser, tt.exp, got, tt.want)
		}
	}
	for _, tt := range []struct{ maxLen, exp int }{
		{0, 0}, {511, 0}, {512, 0}, {1023, 0}, {1024, 1}, {1 << 20, 11}, {1<<24 - 1, 14}, {1 << 24, 15}, {1 << 30, 15},
	} {
		if got := rawExpFor(tt.maxLen); int(got) != tt.exp {
			t.Errorf("rawExpFor(%d) = %d, want %d", tt.maxLen, got, tt.exp)
		}
	}
}

// rawRec is a copy of a rawEvent that outlives the input buffer.
type rawRec struct {
	typ     rawFrameType
	payload string
}

// feedRaw runs data through a fresh rawReader in the given chunks,
// discarding each frame after recording it.
func feedRaw(t testing.TB, maxLen int, chunks ...[]byte) ([]rawRec, error) {
	t.Helper()
	r := &rawReader{maxLen: maxLen}
	total := 0
	for _, c := range chunks {
		total += len(c)
	}
	in := newInBuf(max(total, 16))
	var out []rawRec
	for _, c := range chunks {
		in.write(c)
		for {
			before := in.InboundBuffered()
			ev, n, err := r.next(in)
			if err != nil {
				return out, err
			}
			if n == 0 {
				if in.InboundBuffered() != before {
					t.Fatal("need-more consumed bytes")
				}
				break
			}
			out = append(out, rawRec{ev.typ, string(ev.payload)})
			in.Discard(n)
		}
	}
	return out, nil
}

func TestRawReader(t *testing.T) {
	const limit = 1 << 16
	tests := []struct {
		name string
		data []byte
		want []rawRec
		err  error
	}{
		{"message", appendRawFrame(nil, rawMessage, []byte(`[1,"realm1",{}]`)), []rawRec{{rawMessage, `[1,"realm1",{}]`}}, nil},
		{"empty message", appendRawFrame(nil, rawMessage, nil), []rawRec{{rawMessage, ""}}, nil},
		{"ping pong message", cat(
			appendRawFrame(nil, rawPing, []byte("hb-1")),
			appendRawFrame(nil, rawPong, []byte("hb-0")),
			appendRawFrame(nil, rawMessage, []byte("m"))),
			[]rawRec{{rawPing, "hb-1"}, {rawPong, "hb-0"}, {rawMessage, "m"}}, nil},
		{"at the limit", appendRawFrame(nil, rawMessage, bytes.Repeat([]byte("z"), limit)),
			[]rawRec{{rawMessage, strings.Repeat("z", limit)}}, nil},
		{"over the limit", appendRawFrame(nil, rawMessage, bytes.Repeat([]byte("z"), limit+1)), nil, errRawTooLarge},
		{"over the limit after a message", cat(appendRawFrame(nil, rawMessage, []byte("ok")), []byte{0, 0xff, 0xff, 0xff}),
			[]rawRec{{rawMessage, "ok"}}, errRawTooLarge},
		{"X bit with length bits", []byte{0x08, 0, 0, 1}, nil, errRawBadLength},
		{"X bit over the limit", []byte{0x08, 0, 0, 0}, nil, errRawTooLarge},
		{"reserved bits", []byte{0x10, 0, 0, 0}, nil, errRawReservedBits},
		{"type 3", []byte{0x03, 0, 0, 0}, nil, errRawReservedType},
		{"type 7", []byte{0x07, 0, 0, 1, 'x'}, nil, errRawReservedType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(how string, got []rawRec, err error) {
				t.Helper()
				if err != tt.err || len(got) != len(tt.want) {
					t.Fatalf("%s: %d events, err %v; want %d, %v", how, len(got), err, len(tt.want), tt.err)
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Fatalf("%s: event %d = %+v", how, i, got[i])
					}
				}
			}
			got, err := feedRaw(t, limit, tt.data)
			check("whole", got, err)
			for _, i := range splitOffsets(len(tt.data)) {
				got, err := feedRaw(t, limit, tt.data[:i], tt.data[i:])
				check("split", got, err)
			}
			got, err = feedRaw(t, limit, byteChunks(tt.data)...)
			check("bytewise", got, err)
		})
	}
}

// TestRawTooLargeBeforePayload: the limit is enforced from the 4-octet
// prefix alone, without waiting for the payload.
func TestRawTooLargeBeforePayload(t *testing.T) {
	_, err := feedRaw(t, 512, appendRawHeader(nil, rawMessage, 513))
	if err != errRawTooLarge {
		t.Fatalf("err %v", err)
	}
	in := newInBuf(16)
	in.write(appendRawHeader(nil, rawMessage, rawMaxLength))
	r := &rawReader{maxLen: 1 << 20}
	if allocs := testing.AllocsPerRun(100, func() { _, _, err = r.next(in) }); allocs != 0 || err != errRawTooLarge {
		t.Fatalf("allocs %v err %v", allocs, err)
	}
}

// TestRawMaxLength: a 2^24-octet frame (the X bit) is accepted by a reader
// whose limit is 2^24, and appendRawHeader writes its prefix.
func TestRawMaxLength(t *testing.T) {
	if testing.Short() {
		t.Skip("16 MiB frame")
	}
	hdr := appendRawHeader(nil, rawPing, rawMaxLength)
	if !bytes.Equal(hdr, []byte{0x09, 0, 0, 0}) {
		t.Fatalf("prefix % x", hdr)
	}
	payload := bytes.Repeat([]byte{0xa5}, rawMaxLength)
	in := newInBuf(rawMaxLength + 4)
	r := &rawReader{} // zero maxLen: 2^24
	in.write(hdr)
	in.write(payload[:rawMaxLength-1])
	if _, n, err := r.next(in); n != 0 || err != nil {
		t.Fatalf("one byte short: n %d err %v", n, err)
	}
	in.write(payload[rawMaxLength-1:])
	ev, n, err := r.next(in)
	if err != nil || n != rawMaxLength+4 || ev.typ != rawPing || !bytes.Equal(ev.payload, payload) {
		t.Fatalf("n %d err %v", n, err)
	}
}

func TestAppendRawHeader(t *testing.T) {
	tests := []struct {
		typ  rawFrameType
		n    int
		want []byte
	}{
		{rawMessage, 0, []byte{0, 0, 0, 0}},
		{rawMessage, 0x123456, []byte{0, 0x12, 0x34, 0x56}},
		{rawPing, 1, []byte{1, 0, 0, 1}},
		{rawPong, rawMaxLength - 1, []byte{2, 0xff, 0xff, 0xff}},
		{rawPong, rawMaxLength, []byte{0x0a, 0, 0, 0}},
	}
	for _, tt := range tests {
		if got := appendRawHeader(nil, tt.typ, tt.n); !bytes.Equal(got, tt.want) {
			t.Errorf("header(%d, %d) = % x, want % x", tt.typ, tt.n, got, tt.want)
		}
	}
}

// TestRawSession: handshake, then a message and a PING, all sent one byte at
// a time, as a client would over a slow link; the router's side answers the
// handshake and the PING with a PONG carrying the same payload.
func TestRawSession(t *testing.T) {
	stream := cat([]byte{0x7f, 0xa2, 0, 0},
		appendRawFrame(nil, rawMessage, []byte{0x93, 0x01, 0xa6}),
		appendRawFrame(nil, rawPing, []byte("keepalive")))
	in := newInBuf(64)
	var out []byte
	var hs *rawHandshake
	r := &rawReader{maxLen: rawMaxLen(rawExpFor(1 << 20))}
	var msgs []string
	for _, c := range byteChunks(stream) {
		in.write(c)
		if hs == nil {
			h, n, err := readRawHandshake(in)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				continue
			}
			hs = &h
			reply := rawHandshakeReply(h.ser, rawExpFor(1<<20))
			out = append(out, reply[:]...)
			in.Discard(n)
		}
		for {
			ev, n, err := r.next(in)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			switch ev.typ {
			case rawPing:
				out = appendRawFrame(out, rawPong, ev.payload)
			case rawMessage:
				msgs = append(msgs, string(ev.payload))
			}
			in.Discard(n)
		}
	}
	want := cat([]byte{0x7f, 0xb2, 0, 0}, appendRawFrame(nil, rawPong, []byte("keepalive")))
	if hs.ser != proto.MsgPack || hs.maxRecv != 1<<19 || !bytes.Equal(out, want) {
		t.Fatalf("handshake %+v, wrote % x", hs, out)
	}
	if len(msgs) != 1 || msgs[0] != "\x93\x01\xa6" {
		t.Fatalf("messages %q", msgs)
	}
}
