package loop

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A loose URI holding U+FEFF (ZERO WIDTH NO-BREAK SPACE, the byte order
// mark) is invalid: it is whitespace to JavaScript's \s, with which wampy
// writes the spec's loose rule ([^\s.#]), as U+00A0 is to JavaScript's and
// Python's; Go's unicode.IsSpace leaves it out.
// Before, the router took "com.example.add\ufeff" as a procedure or
// topic of its own, one that reads as "com.example.add" in logs and meta
// listings and that a wampy client cannot name (its own check refuses it).
func TestSocketURIWithBOMInvalid(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	bad := "com.example.add\ufeff"
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		p := s.joinRS(t, ser)
		for _, code := range []proto.Code{proto.CodeRegister, proto.CodeSubscribe, proto.CodeCall, proto.CodePublish} {
			req := p.nextReq()
			m := &proto.Message{Type: code, Request: req, Dict: emptyDict(t, ser), URI: []byte(bad)}
			if code == proto.CodePublish {
				m.Dict = rawValue(t, ser, map[string]any{"acknowledge": true})
			}
			p.c.send(encodeMsg(t, ser, m))
			got := p.next()
			if got.Type != proto.CodeError || got.Request != req || string(got.URI) != proto.URIInvalidURI {
				t.Errorf("%s %v of %q: got %v %d %q, want ERROR %s", ser, code, bad, got.Type, got.Request, got.URI, proto.URIInvalidURI)
			}
		}
		p.register("com.example.add_" + ser.String()) // a URI without it is fine
	}
}
