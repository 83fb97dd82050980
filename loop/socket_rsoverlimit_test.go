package loop

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A RawSocket frame longer than the maximum the router announced fails the
// connection, as the RawSocket spec has it, and the client is told why
// first: ABORT wamp.error.protocol_violation, its message saying the
// message is too big and naming the maximum (WebSocket's close says
// "message too big", status 1009), before or after the session joined.
// The close is still counted as message_too_big. Before, the connection
// closed with no word at all.
func TestSocketRSFrameOverLimitAborts(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, _ *route.Config) { o.MaxMessage = 64 << 10 })
	for _, joined := range []bool{false, true} {
		before := s.e.Stats().Closes[CloseTooBig]
		r := dialRS(t, s.url, proto.JSON, 15)
		p := newWAMP(t, r, proto.JSON)
		if joined {
			p.join()
		}
		r.write([]byte{0, 0x10, 0, 0}) // 1 MiB announced, over the 64 KiB maximum
		b, err := r.readMsg(ioTimeout)
		if err != nil {
			t.Fatalf("joined=%v: want ABORT, got %v", joined, err)
		}
		m, err := proto.Decode(proto.JSON, b)
		if err != nil || m.Type != proto.CodeAbort {
			t.Fatalf("joined=%v: want ABORT, got %q (%v)", joined, b, err)
		}
		d, _ := proto.DecodeValue(m.Dict)
		msg, _ := d.(map[string]any)["message"].(string)
		if string(m.URI) != proto.URIProtocolViolation || !strings.Contains(msg, "too big") || !strings.Contains(msg, "65536") {
			t.Fatalf("joined=%v: ABORT %s %q, want %s saying too big and naming 65536", joined, m.URI, msg, proto.URIProtocolViolation)
		}
		r.c.SetReadDeadline(time.Now().Add(ioTimeout))
		var one [1]byte
		if n, err := r.br.Read(one[:]); err == nil || !isClosedErr(err) {
			t.Fatalf("joined=%v: want the connection closed, got %d bytes, %v", joined, n, err)
		}
		eventually(t, ioTimeout, "the close counted as message_too_big", func() bool {
			return s.e.Stats().Closes[CloseTooBig] == before+1
		})
	}
	eventually(t, ioTimeout, "the sessions to leave", func() bool { return s.r.SessionCount() == 0 })
}
