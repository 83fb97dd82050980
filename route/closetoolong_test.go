package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A router GOODBYE or ABORT whose message (details.message) makes it
// longer than the peer accepts (a RawSocket client may announce 512
// bytes) goes without the message, rather than not at all: a kill whose
// message is long (a meta caller's text), an ABORT quoting a long realm
// name the client sent. Before, the transport refused it and the session
// was closed without a word (logged at debug only): the client could not
// tell a kill from a network failure, nor an unknown realm from a
// crash, and reconnected as after one.
func TestRouterCloseTooLongForPeer(t *testing.T) {
	e := newEnv(t, 2, nil)
	admin := e.join(proto.JSON)
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		victim := e.join(ser)
		victim.peer.maxLen.Store(512)
		long := strings.Repeat("m", 600)
		admin.callMeta("wamp.session.kill", []any{victim.id}, map[string]any{"reason": "com.app.retired", "message": long})
		m := victim.expect(proto.CodeGoodbye)
		if string(m.URI) != "com.app.retired" {
			t.Fatalf("%s: GOODBYE %s, want com.app.retired", ser, m.URI)
		}
		if msg := m.Opt.String(proto.KeyMessage); msg != "" {
			t.Fatalf("%s: GOODBYE message of %d bytes", ser, len(msg))
		}
		// It still waits for the client's GOODBYE: the session closes
		// when it answers.
		if victim.peer.closed.Load() {
			t.Fatalf("%s: closed before the client's GOODBYE", ser)
		}
		victim.send(&proto.Message{Type: proto.CodeGoodbye, URI: []byte(proto.CloseGoodbyeAndOut), Dict: victim.opts(nil)})
		if !victim.peer.closed.Load() {
			t.Fatalf("%s: not closed after the client's GOODBYE", ser)
		}

		// A short message still goes.
		victim = e.join(ser)
		victim.peer.maxLen.Store(512)
		admin.callMeta("wamp.session.kill", []any{victim.id}, map[string]any{"message": "retired"})
		if m := victim.expect(proto.CodeGoodbye); m.Opt.String(proto.KeyMessage) != "retired" {
			t.Fatalf("%s: GOODBYE message %q, want retired", ser, m.Opt.String(proto.KeyMessage))
		}

		// A reason too long itself (a kill's may be a URI of 4 KiB): closed
		// without GOODBYE, as before.
		victim = e.join(ser)
		victim.peer.maxLen.Store(512)
		admin.callMeta("wamp.session.kill", []any{victim.id}, map[string]any{"reason": "com." + strings.Repeat("r", 600)})
		e.sync()
		if !victim.peer.closed.Load() {
			t.Fatalf("%s: a GOODBYE whose reason is too long: not closed", ser)
		}
		victim.quiet()

		// ABORT quoting a realm of 500 bytes the client asked for.
		c := e.connect(ser)
		c.peer.maxLen.Store(512)
		realm := strings.Repeat("r.", 249) + "rr"
		c.hello(realm, allFeatures, nil)
		m = c.expect(proto.CodeAbort)
		if string(m.URI) != proto.URINoSuchRealm || m.Opt.String(proto.KeyMessage) != "" {
			t.Fatalf("%s: ABORT %s %q, want no_such_realm without message", ser, m.URI, m.Opt.String(proto.KeyMessage))
		}
		if !c.peer.closed.Load() {
			t.Fatalf("%s: not closed after ABORT", ser)
		}
	}
}
