package route

import (
	"runtime"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// HELLO's roles (read on the event loop, for every HELLO, anonymous ones
// included), its authextra and AUTHENTICATE's Extra (read on the worker
// pool, for every Challenge and Authenticate, whatever the method) were
// decoded into Go values without a budget. Within their 8 KiB bound a
// MessagePack array of empty maps (one byte each) is 8,000 maps: about
// 690 KB of allocations and 1.7 ms of CPU per message, to read a few
// flags and a public key, where a whole 8 KiB PUBLISH is read lazily and
// within Config.DecodeRatio. One address that opened connections and sent
// such a HELLO on each (no credential, no failure counted, no lockout)
// made the loops and the pool spend 1.7 ms each. Now they are decoded
// within 64 KiB of Go values (maxAuthDecoded, 8 times their bound), and a
// message whose details take more is refused as a protocol violation.
func TestAuthDetailsDecodeBounded(t *testing.T) {
	pad := make([]any, 8000)
	for i := range pad {
		pad[i] = map[string]any{}
	}
	const n = 20
	enc := func(t *testing.T, m *proto.Message) []byte {
		var e proto.Encoder
		b, err := e.Append(nil, proto.MsgPack, m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hello := func(t *testing.T, realm string, roles, details map[string]any) []byte {
		d := map[string]any{"roles": roles}
		for k, v := range details {
			d[k] = v
		}
		raw, err := proto.EncodeValue(proto.MsgPack, d)
		if err != nil {
			t.Fatal(err)
		}
		return enc(t, &proto.Message{Type: proto.CodeHello, URI: []byte(realm), Dict: raw})
	}
	for _, tt := range []struct {
		name  string
		realm string
		setup func(t *testing.T, c *tc) // before the message measured
		msg   []byte
	}{
		{"HELLO roles, anonymous", "realm1", nil,
			hello(t, "realm1", map[string]any{"caller": map[string]any{}, "pad": pad}, nil)},
		{"HELLO authextra, wampcra", "secure", nil,
			hello(t, "secure", allFeatures, map[string]any{"authmethods": []any{"wampcra"}, "authid": "bob", "authextra": map[string]any{"pad": pad}})},
		{"AUTHENTICATE extra, ticket", "secure", func(t *testing.T, c *tc) {
			c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
			c.expect(proto.CodeChallenge)
		}, func() []byte {
			raw, _ := proto.EncodeValue(proto.MsgPack, map[string]any{"pad": pad})
			return enc(t, &proto.Message{Type: proto.CodeAuthenticate, URI: []byte("wrong"), Dict: raw})
		}()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := secureEnv(t, func(c *Config) {
				c.Realms = append(c.Realms, RealmConfig{Name: "realm1", Anonymous: true})
			})
			var cs []*tc
			for range n {
				c := e.connect(proto.MsgPack)
				if tt.setup != nil {
					tt.setup(t, c)
				}
				cs = append(cs, c)
			}
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			var last *proto.Message
			for _, c := range cs {
				c.sendBytes(tt.msg)
				last = c.recv()
			}
			runtime.ReadMemStats(&ms)
			per := (ms.TotalAlloc - before) / n
			t.Logf("%d messages of %d bytes: %d KiB allocated each; answer %v %s %q", n, len(tt.msg), per>>10, last.Type, last.URI, last.Opt.String(proto.KeyMessage))
			if per > 200<<10 {
				t.Fatalf("a %d-byte message (8,000 empty maps) made the router allocate %d KiB to read it (answer %v %s)", len(tt.msg), per>>10, last.Type, last.URI)
			}
			if last.Type != proto.CodeAbort || string(last.URI) != proto.URIProtocolViolation {
				t.Fatalf("answer %v %s %q, want ABORT %s", last.Type, last.URI, last.Opt.String(proto.KeyMessage), proto.URIProtocolViolation)
			}
		})
	}
}
