package main

import (
	"os"
	"strings"
	"testing"
)

// TestWritableFilesWarned: a configuration file, or a file it names whose
// content the router trusts (here gateway.bearer.jwks_file and a TLS
// key), that every local user may write let anyone on the machine give
// themselves a user or role, or add a key to the JWKS and sign bearer
// tokens the gateway takes; nothing said it (the readable secrets were
// warned of). check-config warns, naming the key and the mode (run and a
// SIGHUP say the same: secretWarnings); a file writable by its owner and
// group only is not warned of.
func TestWritableFilesWarned(t *testing.T) {
	jwks := newJWKS(t).file
	cfg := writeConfig(t, "realms: [{name: realm1}]\ngateway:\n  listen: 127.0.0.1:0\n  bearer: {jwks_file: "+jwks+"}\n")
	for _, k := range []struct {
		cfgMode, jwksMode os.FileMode
		want              []string
	}{
		{0o666, 0o644, []string{"the configuration file " + cfg + " is writable by every local user (mode 0666)"}},
		{0o640, 0o646, []string{"gateway.bearer.jwks_file " + jwks + " is writable by every local user (mode 0646)"}},
		{0o664, 0o664, nil},
	} {
		if err := os.Chmod(cfg, k.cfgMode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(jwks, k.jwksMode); err != nil {
			t.Fatal(err)
		}
		_, e, code := runCLI("check-config", cfg)
		if code != 0 || strings.Count(e, "writable by every local user") != len(k.want) {
			t.Errorf("check-config, file %04o, jwks %04o: exit %d, %s; want %d warnings", k.cfgMode, k.jwksMode, code, e, len(k.want))
		}
		for _, w := range k.want {
			if !strings.Contains(e, w) {
				t.Errorf("check-config, file %04o, jwks %04o: %s; want %q", k.cfgMode, k.jwksMode, e, w)
			}
		}
	}
}
