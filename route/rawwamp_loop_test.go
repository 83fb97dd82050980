package route_test

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"testing"
	"time"
)

// rawWAMP is a WAMP session over RawSocket with the JSON serializer,
// written and read message by message, for the shapes the client library
// does not send (or sends only after it has read the router's answer).
type rawWAMP struct {
	t *testing.T
	c net.Conn
}

// dialRawWAMP opens a RawSocket connection to addr and joins realm with
// roles (a HELLO's Details.roles).
func dialRawWAMP(t *testing.T, addr, realm string, roles map[string]any) *rawWAMP {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawWAMP{t: t, c: c}
	// Magic, 16 MiB maximum (0xF), JSON (1).
	if _, err := c.Write([]byte{0x7f, 0xf1, 0, 0}); err != nil {
		t.Fatal(err)
	}
	var hs [4]byte
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, hs[:]); err != nil || hs[0] != 0x7f || hs[1]&0x0f != 1 {
		t.Fatalf("RawSocket handshake: % x, %v", hs, err)
	}
	r.send([]any{1, realm, map[string]any{"roles": roles}})
	if m := r.recv(); len(m) < 2 || m[0] != float64(2) {
		t.Fatalf("HELLO answered %v", m)
	}
	return r
}

// frame encodes msg as one RawSocket frame.
func (r *rawWAMP) frame(msg []any) []byte {
	b, err := json.Marshal(msg)
	if err != nil {
		r.t.Fatal(err)
	}
	out := make([]byte, 4, 4+len(b))
	binary.BigEndian.PutUint32(out, uint32(len(b))) // first octet 0: a WAMP message
	return append(out, b...)
}

// send writes the messages in one write, so that the router reads them
// together, before any answer.
func (r *rawWAMP) send(msgs ...[]any) {
	r.t.Helper()
	var b []byte
	for _, m := range msgs {
		b = append(b, r.frame(m)...)
	}
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// recv reads the next WAMP message (pings are answered and skipped).
func (r *rawWAMP) recv() []any {
	r.t.Helper()
	for {
		var h [4]byte
		r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(r.c, h[:]); err != nil {
			r.t.Fatalf("reading: %v", err)
		}
		n := int(binary.BigEndian.Uint32(h[:]) & 0xffffff)
		b := make([]byte, n)
		if _, err := io.ReadFull(r.c, b); err != nil {
			r.t.Fatalf("reading: %v", err)
		}
		switch h[0] {
		case 0:
			var m []any
			if err := json.Unmarshal(b, &m); err != nil {
				r.t.Fatalf("undecodable %q: %v", b, err)
			}
			return m
		case 1: // PING: PONG with its payload
			h[0] = 2
			r.c.Write(append(h[:], b...))
		}
	}
}

// rawRoles announce every feature the dealer tests use.
var rawRoles = map[string]any{
	"caller": map[string]any{"features": map[string]any{
		"progressive_call_results": true, "progressive_call_invocations": true, "call_canceling": true, "call_timeout": true, "caller_identification": true}},
	"callee": map[string]any{"features": map[string]any{
		"progressive_call_results": true, "progressive_call_invocations": true, "call_canceling": true, "call_timeout": true,
		"caller_identification": true, "pattern_based_registration": true, "shared_registration": true}},
}
