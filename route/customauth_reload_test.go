package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A session of an embedder's own Authenticator whose Identity names no
// AuthProvider (realm "trusted": trustAuth) survives a reload that leaves
// its realm and method as they were, and so do its retained events. It
// was taken for a static user ("static" is what WELCOME says for an empty
// provider), looked up in the realm's user store, which does not hold it,
// and ended "principal ... was removed from the configuration" at every
// reload, its retained events dropped with it.
func TestReloadKeepsSessionsOfOtherAuthenticators(t *testing.T) {
	e := newEnv(t, 1, nil)
	dev := e.joinAs(proto.JSON, "dev1")
	req := dev.publish("com.dev1.state", map[string]any{"retain": true, "acknowledge": true}, []any{"on"}, nil)
	if m := dev.expect(proto.CodePublished); m.Request != req {
		t.Fatalf("PUBLISHED %d, want %d", m.Request, req)
	}
	reload := func() {
		t.Helper()
		var cfgs []RealmConfig
		for _, name := range []string{"realm1", "realm2", "trusted"} {
			cfgs = append(cfgs, *e.r.Realm(name).conf())
		}
		if err := e.r.Reload(cfgs); err != nil {
			t.Fatal(err)
		}
		e.sync()
	}
	reload()
	dev.quiet()
	other := e.joinAs(proto.JSON, "watcher")
	other.subscribe("com.dev1.state", map[string]any{"get_retained": true})
	if m := other.expect(proto.CodeEvent); len(argsOf(m)) != 1 || argsOf(m)[0] != "on" {
		t.Fatalf("retained EVENT args %v, want [on]", argsOf(m))
	}
	// Its method still has to be offered: a reload that takes it away
	// ends it.
	var cfgs []RealmConfig
	for _, name := range []string{"realm1", "realm2"} {
		cfgs = append(cfgs, *e.r.Realm(name).conf())
	}
	cfgs = append(cfgs, RealmConfig{Name: "trusted", Anonymous: true, AnonymousRole: "anonymous"})
	if err := e.r.Reload(cfgs); err != nil {
		t.Fatal(err)
	}
	e.sync()
	if m := dev.expect(proto.CodeGoodbye); string(m.URI) != proto.CloseKilled {
		t.Fatalf("GOODBYE %s, want %s", m.URI, proto.CloseKilled)
	}
}
