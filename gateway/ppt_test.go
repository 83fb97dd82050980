package gateway

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// rawJSONPeer is a WAMP peer over RawSocket with JSON, sending and
// receiving messages as JSON arrays, for what the Go client does not send
// (a YIELD in payload passthru mode).
type rawJSONPeer struct {
	t *testing.T
	c net.Conn
}

func dialRawJSON(t *testing.T, addr string) *rawJSONPeer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte{0x7f, 0xf1, 0, 0}); err != nil { // 16 MiB, JSON
		t.Fatal(err)
	}
	var hs [4]byte
	if _, err := io.ReadFull(c, hs[:]); err != nil || hs[0] != 0x7f || hs[1]&0x0f != 1 {
		t.Fatalf("RawSocket handshake: %v %x", err, hs)
	}
	return &rawJSONPeer{t: t, c: c}
}

func (p *rawJSONPeer) send(msg ...any) {
	p.t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		p.t.Fatal(err)
	}
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], uint32(len(b)))
	h[0] = 0
	if _, err := p.c.Write(append(h[:], b...)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawJSONPeer) recv() []any {
	p.t.Helper()
	for {
		var h [4]byte
		if _, err := io.ReadFull(p.c, h[:]); err != nil {
			p.t.Fatal(err)
		}
		n := int(binary.BigEndian.Uint32(h[:]) & 0xffffff)
		b := make([]byte, n)
		if _, err := io.ReadFull(p.c, b); err != nil {
			p.t.Fatal(err)
		}
		if h[0]&0x07 != 0 { // PING or PONG
			continue
		}
		var m []any
		if err := json.Unmarshal(b, &m); err != nil {
			p.t.Fatalf("%s: %v", b, err)
		}
		return m
	}
}

// TestGatewayCallOfPPTCallee: the gateway's in-process sessions do not
// announce payload_passthru_mode, so an HTTP call of a procedure whose
// callee answers in payload passthru mode (ppt_scheme in YIELD.Options)
// gets 501 wamp.error.feature_not_supported, the caller's side of the
// specification's rule (README, HTTP gateway, says so).
func TestGatewayCallOfPPTCallee(t *testing.T) {
	e := newEnv(t, nil)
	addr := strings.TrimSuffix(strings.TrimPrefix(e.wamp, "ws://"), "/ws")
	callee := dialRawJSON(t, addr)
	callee.send(proto.CodeHello, "realm1", map[string]any{"roles": map[string]any{"callee": map[string]any{"features": map[string]any{"payload_passthru_mode": true}}}})
	if m := callee.recv(); m[0] != float64(proto.CodeWelcome) {
		t.Fatalf("got %v, want WELCOME", m)
	}
	callee.send(proto.CodeRegister, 1, map[string]any{}, "com.ppt.echo")
	if m := callee.recv(); m[0] != float64(proto.CodeRegistered) {
		t.Fatalf("got %v, want REGISTERED", m)
	}
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		m := callee.recv()
		if m[0] != float64(proto.CodeInvocation) {
			t.Errorf("got %v, want INVOCATION", m)
			return
		}
		callee.send(proto.CodeYield, m[1], map[string]any{"ppt_scheme": "x_custom", "ppt_serializer": "native"}, []any{"\x00AQI="})
	}()
	resp, body := e.do("POST", "/wamp/realm1/call/com.ppt.echo", `{"args": []}`)
	<-answered
	expectProblem(t, resp, body, 501, proto.URIFeatureNotSupported)
}
