package loop

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestSocketRouterErrorTooLongForRawSocketClient: a RawSocket client that
// announces 512 bytes (the least it may) and calls a procedure of a long
// URI nobody registered gets its ERROR (without the message, which quotes
// the URI and would make it longer than the client takes), over a real
// connection. Before, the ERROR was dropped and the CALL never answered
// (route's TestRouterErrorTooLongForPeer).
func TestSocketRouterErrorTooLongForRawSocketClient(t *testing.T) {
	s := startServer(t, nil)
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		r := dialRS(t, s.url, ser, 0) // 2^9 bytes
		w := newWAMP(t, r, ser)
		w.join()
		long := strings.Repeat("a.", 250) + "ab"
		req := w.nextReq()
		r.send(w.callMsg(req, long, nil))
		b, err := r.readMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("%s: no answer to the CALL: %v", ser, err)
		}
		m, err := proto.Decode(ser, b)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URINoSuchProcedure {
			t.Fatalf("%s: got %v %d %s, want ERROR no_such_procedure", ser, m.Type, m.Request, m.URI)
		}
		if len(b) > 512 {
			t.Fatalf("%s: ERROR of %d bytes", ser, len(b))
		}
		// The session goes on: a short URI's ERROR has its message.
		if m := w.call("com.none", nil); m.Type != proto.CodeError || !m.Args.Present() {
			t.Fatalf("%s: short URI: got %v with args %v", ser, m.Type, m.Args.Present())
		}
		r.c.Close()
	}
}
