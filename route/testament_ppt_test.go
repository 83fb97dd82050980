package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A testament's publish_options in Payload Passthru Mode (ppt_scheme,
// ppt_serializer, ppt_cipher, ppt_keyid) reach its EVENT's details, as a
// PUBLISH's do: the subscribers need them to read its payload (an
// end-to-end encrypted one, whose key id and cipher they name). Before,
// add_testament read only retain, disclose_me and the black/white lists
// from them: the EVENT came without them, its binary payload unreadable,
// and add_testament answered as if all was well. As a PUBLISH in the mode
// from a publisher that did not announce payload_passthru_mode (an ABORT
// there), a testament in it is refused, ERROR wamp.error.invalid_argument,
// where it was taken.
func TestTestamentKeepsPayloadPassthruOptions(t *testing.T) {
	e := newEnv(t, 2, nil)
	sub := e.join(proto.JSON)
	sub.subscribe("com.dead", nil)
	ppt := map[string]any{"ppt_scheme": "x_e2ee", "ppt_serializer": "cbor", "ppt_cipher": "xsalsa20poly1305", "ppt_keyid": "key-7"}
	blob := []byte{0xde, 0xad, 0xbe, 0xef}

	roles := map[string]any{}
	for k, v := range allFeatures {
		roles[k] = v
	}
	roles["publisher"] = map[string]any{"features": map[string]any{"payload_passthru_mode": true, "publisher_exclusion": true}}
	c := e.connect(proto.MsgPack)
	c.hello("realm1", roles, nil)
	c.id = c.expect(proto.CodeWelcome).ID
	c.callMeta("wamp.session.add_testament", []any{"com.dead", []any{blob}, nil, ppt}, nil)
	c.drop()
	ev := sub.expect(proto.CodeEvent)
	for _, key := range []proto.Key{proto.KeyPPTScheme, proto.KeyPPTSerializer, proto.KeyPPTCipher, proto.KeyPPTKeyID} {
		if got, want := ev.Opt.String(key), ppt[key.Name()]; got != want {
			t.Errorf("testament EVENT's %s is %q, want %q", key.Name(), got, want)
		}
	}
	if a := argsOf(ev); len(a) != 1 || string(a[0].([]byte)) != string(blob) {
		t.Errorf("testament EVENT's arguments %v, want [%x]", a, blob)
	}

	// A session that did not announce the feature is refused.
	d := e.join(proto.MsgPack)
	req := d.call("wamp.session.add_testament", nil, []any{"com.dead", []any{blob}, nil, ppt}, nil)
	d.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
	d.drop()
	sub.quiet()
}
