package loop

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A JSON message the router refuses for what its numbers or keys hold gets
// an ABORT whose message names that, so that a client's author, who finds
// the JSON valid, learns why: 1e400 is JSON (RFC 8259 leaves the range to
// implementations) beyond float64, and a dictionary key "\u0000AA==" is a
// string, which WAMP's JSON reads as binary. Both were told "malformed
// number" and `dictionary key must be a string, and not "__proto__"`.
func TestJSONAbortNamesNumberRangeAndBinaryKey(t *testing.T) {
	t.Parallel()
	s, h := badInputServer(t)
	for _, c := range []struct {
		name, msg, want string
	}{
		{"float beyond float64", `[16,1,{},"com.x",[1e400]]`, "beyond float64"},
		{"negative float beyond float64", `[16,1,{},"com.x",[{"a":[-0.5e99999]}]]`, "beyond float64"},
		{"float text over 4 KiB", `[16,1,{},"com.x",[0.` + strings.Repeat("1", 5000) + `]]`, "4 KiB"},
		{"binary key", `[16,1,{},"com.x",[],{"\u0000AA==":1}]`, "binary string"},
		{"binary key, bad base64", `[16,1,{},"com.x",[],{"\u0000x":1}]`, "binary string"},
		{"binary key in options", `[16,1,{"x":{"\u0000AA==":1}},"com.x",[]]`, "binary string"},
		{"binary key in a known option", `[48,1,{"forward_for":[{"\u0000AA==":1}]},"com.x",[]]`, "binary string"},
	} {
		w := dialWS(t, s.url, proto.JSON)
		p := newWAMP(t, w, proto.JSON)
		p.join()
		w.send([]byte(c.msg))
		m := p.expect(proto.CodeAbort)
		d, err := proto.DecodeValue(m.Dict)
		if err != nil {
			t.Fatalf("%s: ABORT details: %v", c.name, err)
		}
		msg, _ := d.(map[string]any)["message"].(string)
		if string(m.URI) != proto.URIProtocolViolation || !strings.Contains(msg, c.want) {
			t.Errorf("%s: ABORT %s %q, want %s naming %q", c.name, m.URI, msg, proto.URIProtocolViolation, c.want)
		}
		w.c.Close()
	}
	h.check()
}
