package loop

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A RawSocket client that announced 2^24 octets may be sent frames of
// 2^24 octets, and must have a PING answered by a PONG carrying the same
// payload. The router sends such a client at most 2^24-1 (conn.maxOut: both
// Autobahns misread a frame of exactly 2^24, the X bit), and answerPing
// held the PONG to that cap: a client's PING of exactly 2^24 closed its
// connection as a protocol error (errPongTooLong), though the client broke
// no rule. A client that sends a 2^24 frame with the X bit reads it too
// (an Autobahn cannot send one: its 2^24 sets a type bit instead): its
// PING is answered.
func TestRawSocketPingOf2To24Answered(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.HardLimit = 40 << 20 // a 16 MiB pong fits the backlog
	})
	r := dialRS(t, s.url, proto.JSON, 15)
	p := newWAMP(t, r, proto.JSON)
	p.join()

	payload := make([]byte, rawMaxLength)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	r.c.SetWriteDeadline(time.Now().Add(4 * ioTimeout))
	if _, err := r.c.Write(append([]byte{0x08 | byte(rawPing), 0, 0, 0}, payload...)); err != nil {
		t.Fatalf("writing the PING: %v", err)
	}
	r.c.SetReadDeadline(time.Now().Add(4 * ioTimeout))
	var h [4]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		t.Fatalf("no PONG to a PING of 2^24 octets from a client announcing 2^24: %v", err)
	}
	if h != [4]byte{0x08 | byte(rawPong), 0, 0, 0} {
		t.Fatalf("frame prefix % x, want a PONG of 2^24 octets (08|02 00 00 00)", h)
	}
	got := make([]byte, rawMaxLength)
	if _, err := io.ReadFull(r.br, got); err != nil {
		t.Fatalf("reading the PONG's payload: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the PONG does not carry the PING's payload")
	}
	r.send(p.publishMsg(p.nextReq(), "com.after.ping", nil, true))
	p.expect(proto.CodePublished)
}
