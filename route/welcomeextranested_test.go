package route_test

import (
	"context"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// extraAuth welcomes any authid without a challenge, with the Identity
// AuthExtra its authid names (an embedder's per-user configuration).
type extraAuth map[string]map[string]any

func (extraAuth) Method() string { return "x-extra" }

func (a extraAuth) Challenge(req *route.AuthRequest) (map[string]any, any, *route.Identity, error) {
	return nil, nil, &route.Identity{AuthID: req.AuthID, AuthRole: "user", AuthExtra: a[req.AuthID]}, nil
}

func (extraAuth) Authenticate(*route.AuthRequest, any, string, map[string]any) (*route.Identity, error) {
	return nil, &route.AuthError{URI: proto.URIAuthenticationFailed, Message: "no"}
}

// An Identity's AuthExtra holding "__proto__" below its top level (in a
// nested dictionary, in a dictionary inside a list) reaches WELCOME
// without those keys, the rest of it as it was, with a warning. Only a
// top-level key was left out (d78d611): with a nested one the whole
// authextra was left out. A cyclic AuthExtra (no WAMP form) is still
// left out whole, the cleaning bounded by proto.MaxDepth and by the
// containers it looks at (a map holding itself twice has 2^99 paths).
func TestWelcomeAuthExtraNestedProtoKeyDropped(t *testing.T) {
	logs := &panicLogBuf{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	cyclic := map[string]any{"a": 1}
	cyclic["self"] = cyclic
	forked := map[string]any{"__proto__": 1} // 2^99 paths within proto.MaxDepth
	forked["a"], forked["b"] = forked, forked
	auth := extraAuth{
		"nested": {
			"tenant":  "t1",
			"profile": map[string]any{"__proto__": map[string]any{"admin": true}, "name": "x"},
			"list":    []any{map[string]any{"__proto__": 1, "k": 2}, "s"},
			"labels":  map[string]string{"__proto__": "p", "zone": "eu"},
			"deep":    map[string]any{"a": map[string]any{"b": []any{map[string]any{"__proto__": nil, "c": 3}}}},
			"twice":   map[string]any{"__proto__": map[string]any{"__proto__": 1}, "x": 1},
		},
		"forked": forked,
		"cyclic": cyclic,
	}
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "extra", Authenticators: []route.Authenticator{auth}}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	dial := func(ser proto.Serializer, authid string) map[string]any {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := client.Dial(ctx, client.Config{URL: "rs://" + e.Addrs()[0].String(), Realm: "extra", Serializer: ser,
			AuthID: authid, AuthMethods: []string{"x-extra"}})
		if err != nil {
			t.Fatalf("%s %s: %v", ser, authid, err)
		}
		defer s.Close()
		x, _ := s.Details()["authextra"].(map[string]any)
		return x
	}
	want := map[string]any{
		"tenant":  "t1",
		"profile": map[string]any{"name": "x"},
		"list":    []any{map[string]any{"k": uint64(2)}, "s"},
		"labels":  map[string]any{"zone": "eu"},
		"deep":    map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": uint64(3)}}}},
		"twice":   map[string]any{"x": uint64(1)},
	}
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		got := dial(ser, "nested")
		if !reflect.DeepEqual(normInts(got), want) {
			t.Errorf("%s: WELCOME's authextra %v, want %v", ser, got, want)
		}
		for _, id := range []string{"cyclic", "forked"} {
			if got := dial(ser, id); got != nil {
				t.Errorf("%s: a cyclic AuthExtra (%s) in WELCOME as %v, want it left out", ser, id, got)
			}
		}
	}
	if l := logs.String(); !strings.Contains(l, "__proto__") || !strings.Contains(l, "level=WARN") {
		t.Errorf("no warning naming the key left out; log:\n%s", l)
	}
}

// normInts turns the integer types the three serializers decode to into
// uint64 (the values here are positive), for DeepEqual.
func normInts(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return nil
		}
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normInts(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = normInts(e)
		}
		return l
	case int64:
		return uint64(x)
	case int:
		return uint64(x)
	case float64:
		return uint64(x)
	}
	return v
}
