package route

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// protoExtraAuth authenticates as trustAuth does, with an Identity whose
// AuthExtra (an embedder's configuration) holds a "__proto__" key.
type protoExtraAuth struct{}

func (protoExtraAuth) Method() string { return "x-protoextra" }
func (protoExtraAuth) Challenge(req *AuthRequest) (map[string]any, any, *Identity, error) {
	return nil, nil, &Identity{AuthID: req.AuthID, AuthRole: "user", AuthExtra: map[string]any{
		"__proto__": map[string]any{"admin": true}, "tenant": "t1",
	}}, nil
}
func (protoExtraAuth) Authenticate(*AuthRequest, any, string, map[string]any) (*Identity, error) {
	return nil, failAuth()
}

// An Identity's AuthExtra holding a "__proto__" key (which every decoder
// of the package refuses, and msgpack5 throws on) failed to encode, and
// WELCOME went without any authextra, unsaid. The key alone is left out
// now, and a warning names it; the other members reach the client.
func TestWelcomeAuthExtraProtoKeyDropped(t *testing.T) {
	var logs lockedBuf
	e := newEnv(t, 1, func(c *Config) {
		c.Realms = append(c.Realms, RealmConfig{Name: "extra", Authenticators: []Authenticator{protoExtraAuth{}}})
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		c := e.connect(ser)
		c.hello("extra", allFeatures, map[string]any{"authmethods": []any{"x-protoextra"}, "authid": "dev1"})
		w := c.expect(proto.CodeWelcome)
		extra, _ := dictOf(t, w)["authextra"].(map[string]any)
		if len(extra) != 1 || extra["tenant"] != "t1" {
			t.Errorf("%s: WELCOME's authextra %v, want map[tenant:t1]", ser, extra)
		}
	}
	if l := logs.String(); !strings.Contains(l, "__proto__") || !strings.Contains(l, "level=WARN") {
		t.Errorf("no warning naming the key left out; log:\n%s", l)
	}
}
