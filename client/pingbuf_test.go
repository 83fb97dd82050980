package client

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A RawSocket PING is read into the session's read buffer, as a message
// is, and answered with a PONG echoing it; a large one's buffer (the
// router's PING may carry up to the client's receive limit, 16 MiB by
// default) was then kept until the next frame came, on an idle session
// for ever, where the buffer of a message larger than 4 MiB is given back
// once the message is handled (README: "A session keeps no buffer of a
// message larger than 4 MiB once it is handled ..., also when no other
// message follows"). PONGs likewise.
func TestIdleSessionHoldsNoLargePing(t *testing.T) {
	for _, typ := range []byte{rsFramePing, rsFramePong} {
		s, c := setup(t, "rs", proto.MsgPack)
		before := heapInUse()
		payload := make([]byte, 8<<20)
		noErr(t, "write", c.writeRS(typ, payload))
		payload = nil
		if typ == rsFramePing {
			if n := len(c.expectPong()); n != 8<<20 {
				t.Fatalf("PONG of %d bytes, want %d", n, 8<<20)
			}
			c.pong = nil
		}
		time.Sleep(100 * time.Millisecond) // the client read it (a PONG has no answer)
		held := int64(heapInUse()) - int64(before)
		t.Logf("held after an 8 MiB frame of type %d: %.1f MiB", typ, float64(held)/(1<<20))
		if held > 2<<20 {
			t.Errorf("an idle session holds %.1f MiB after an 8 MiB frame of type %d (PING 1, PONG 2); want under 2 MiB", float64(held)/(1<<20), typ)
		}
		if err := s.Err(); err != nil {
			t.Fatalf("session ended: %v", err)
		}
	}
}
