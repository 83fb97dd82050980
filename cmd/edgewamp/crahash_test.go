package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/route"
)

// A user's password: line serves salted WAMP-CRA, whose shared secret is
// the derived key the line holds: whoever reads the hash logs in as the
// user without knowing the password (the protocol's own design; the
// client needs only the key). README told a configuration file every
// local user may read ("install the configuration 0644" without the
// edgewamp user) to keep its secrets in the environment, and said
// "password and client secret hashes are not counted": such a file drew
// no warning, and any local account could log in as alice, an admin, by
// WAMP-CRA. The hash is now counted as a secret in clear where its realm
// takes WAMP-CRA (by default, or named in authmethods), not where it
// does not.
func TestPasswordHashWarnedWhereWAMPCRATakesIt(t *testing.T) {
	hash := mustHash(t, "alice-pw")
	p, err := route.ParsePassword(hash)
	if err != nil {
		t.Fatal(err)
	}
	body := func(methods string) string {
		return `listeners: [{address: "127.0.0.1:0"}]
realms:
  - name: realm1` + methods + `
    users:
      - {authid: alice, roles: [admin], password: "` + hash + `"}
`
	}
	cra := writeFile(t, "cra.yaml", body(""))
	if err := os.Chmod(cra, 0o644); err != nil {
		t.Fatal(err)
	}

	// What a local user can do with the file: read the hash and log in.
	r := startRouter(t, "-config", cra)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{
		URL: "ws://" + r.addr + "/ws", Realm: "realm1", AuthID: "alice", AuthMethods: []string{"wampcra"},
		OnChallenge: func(_ string, extra map[string]any) (string, map[string]any, error) {
			return route.CRASignature(p.Key, extra["challenge"].(string)), nil, nil
		},
	})
	if err != nil {
		t.Fatalf("WAMP-CRA with the hash's key: %v", err)
	}
	d := s.Details()
	t.Logf("logged in with the hash alone (no password) as %v, role %v, by %v", d["authid"], d["authrole"], d["authmethod"])
	s.Close()

	const warning = "is readable by every local user (mode 0644) and holds secrets in clear ("
	for _, k := range []struct {
		name, path, want string // want "" for no warning
	}{
		{"default authmethods", cra, "realms[0].users[0].password"},
		{"authmethods: [wampcra]", writeFile(t, "c2.yaml", body("\n    authmethods: [wampcra]")), "realms[0].users[0].password"},
		{"authmethods: [ticket]", writeFile(t, "c3.yaml", body("\n    authmethods: [ticket]")), ""},
	} {
		os.Chmod(k.path, 0o644)
		_, e, code := runCLI("check-config", k.path)
		if code != 0 {
			t.Fatalf("%s: check-config: exit %d: %s", k.name, code, e)
		}
		if k.want == "" && strings.Contains(e, warning[:30]) || k.want != "" && !strings.Contains(e, warning+k.want) {
			t.Errorf("%s, 0644: check-config's stderr:\n%s\nwant a warning naming %q (none if empty)", k.name, e, k.want)
		}
	}
}
