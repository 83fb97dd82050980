package loop

import (
	"bufio"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Over TLS too, a RawSocket frame announced longer than the maximum is
// answered ABORT at its 4-byte prefix (TestSocketRSFrameOverLimitAborts):
// the router reads none of the frame's bytes first, and a client that
// announces 1 MiB and sends nothing more is told at once.
func TestSocketTLSRSFrameOverLimitAborts(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) { o.MaxMessage = 64 << 10 })
	c, err := tls.Dial("tcp", s.url, cert.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &rsClient{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10), ser: proto.JSON, autoPong: true}
	r.write(rsHandshake(proto.JSON, 15))
	r.expectHandshake()
	newWAMP(t, r, proto.JSON).join()
	r.write([]byte{0, 0x10, 0, 0}) // 1 MiB announced, over the 64 KiB maximum; nothing more
	b, err := r.readMsg(ioTimeout) // a router waiting for the frame's bytes times out here
	if err != nil {
		t.Fatalf("want ABORT, got %v", err)
	}
	m, err := proto.Decode(proto.JSON, b)
	if err != nil || m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
		t.Fatalf("want ABORT %s, got %q (%v)", proto.URIProtocolViolation, b, err)
	}
	d, _ := proto.DecodeValue(m.Dict)
	if msg, _ := d.(map[string]any)["message"].(string); !strings.Contains(msg, "1048576") {
		t.Fatalf("ABORT message %q, want the frame's length", msg)
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	var one [1]byte
	if n, err := r.br.Read(one[:]); err == nil {
		t.Fatalf("want the connection closed, got %d bytes", n)
	}
}
