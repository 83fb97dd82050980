package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestCheckConfigListenHostMustResolve: a listen address whose host name
// does not resolve (RFC 6761's .invalid never does) is refused by
// check-config, at its key's line, as run refuses it when it binds;
// before, check-config said ok. A name that resolves passes.
func TestCheckConfigListenHostMustResolve(t *testing.T) {
	for _, k := range []struct{ key, yaml string }{
		{"listeners[0].address", "listeners: [{address: %q}]\n"},
		{"gateway.listen", "gateway: {listen: %q}\n"},
		{"mesh.cluster.listen", "mesh: {cluster: {listen: %q}}\n"},
		{"mesh.leaf.listen", "mesh: {leaf: {listen: %q}}\n"},
	} {
		p := writeConfig(t, fmt.Sprintf(k.yaml, "edge-1.invalid:0"))
		_, e, code := runCLI("check-config", p)
		if want := fmt.Sprintf(`line 1: %s "edge-1.invalid:0": host "edge-1.invalid" does not resolve`, k.key); code != 1 || !strings.Contains(e, want) {
			t.Errorf("check-config with %s edge-1.invalid:0: exit %d: %s\nwant 1 and %q", k.key, code, e, want)
		}
	}
	p := writeConfig(t, "listeners: [{address: \"localhost:0\"}]\ngateway: {listen: \"localhost:0\"}\n")
	if o, e, code := runCLI("check-config", p); code != 0 {
		t.Errorf("check-config with localhost:0: exit %d: %s%s", code, o, e)
	}
}
