package loop

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestSocketRouterCloseTooLongForRawSocketClient: a RawSocket client that
// announces 512 bytes (the least it may) gets the router's GOODBYE of a
// kill whose message is longer than that, and the ABORT for a HELLO of an
// unknown realm whose name makes its message so, without the message,
// over a real connection, JSON, MsgPack and CBOR. Before, neither was
// sent: the connection was closed without a word (route's
// TestRouterCloseTooLongForPeer).
func TestSocketRouterCloseTooLongForRawSocketClient(t *testing.T) {
	s := startServer(t, nil)
	admin := s.dial("ws", proto.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		r := dialRS(t, s.url, ser, 0) // 2^9 bytes
		w := newWAMP(t, r, ser)
		w.join()
		long := strings.Repeat("m", 600)
		if _, err := admin.Call(ctx, "wamp.session.kill", []any{w.id}, map[string]any{"reason": "com.app.retired", "message": long}, nil); err != nil {
			t.Fatal(err)
		}
		b, err := r.readMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("%s: no GOODBYE for the kill: %v", ser, err)
		}
		m, err := proto.Decode(ser, b)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != proto.CodeGoodbye || string(m.URI) != "com.app.retired" || len(b) > 512 {
			t.Fatalf("%s: got %v %s of %d bytes, want GOODBYE com.app.retired", ser, m.Type, m.URI, len(b))
		}
		r.send(w.goodbye())
		if _, err := r.readMsg(2 * time.Second); err != io.EOF {
			t.Fatalf("%s: after the client's GOODBYE: %v, want EOF", ser, err)
		}
		r.c.Close()

		r = dialRS(t, s.url, ser, 0)
		realm := strings.Repeat("r.", 249) + "rr" // 500 bytes, quoted in the message
		r.send(encodeMsg(t, ser, &proto.Message{Type: proto.CodeHello, URI: []byte(realm),
			Dict: rawValue(t, ser, map[string]any{"roles": map[string]any{"caller": map[string]any{}}})}))
		b, err = r.readMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("%s: no ABORT for the unknown realm: %v", ser, err)
		}
		if m, err = proto.Decode(ser, b); err != nil {
			t.Fatal(err)
		}
		if m.Type != proto.CodeAbort || string(m.URI) != proto.URINoSuchRealm || len(b) > 512 {
			t.Fatalf("%s: got %v %s of %d bytes, want ABORT no_such_realm", ser, m.Type, m.URI, len(b))
		}
		r.c.Close()
	}
}
