package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigOAuthRealmLines: README says check-config's errors name
// the line; those of a realm's oauth: block that the oauth package finds
// (a lifetime out of range, max_refresh_tokens past 500, a client's bad
// grant) named line 1, the realms: key, whatever realm or key they were of.
func TestCheckConfigOAuthRealmLines(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"access token lifetime", "oauth: {}\nrealms:\n  - name: r0\n  - name: r1\n    oauth:\n      access_token_lifetime: 25h\n      clients: [{id: c1, public: true}]\n",
			`line 6: oauth: realm "r1": access token lifetime 25h0m0s is outside 1s..24h`},
		{"max refresh tokens", "oauth: {}\nrealms:\n  - name: r1\n    oauth:\n      max_refresh_tokens: 501\n",
			`line 5: oauth: realm "r1": max_refresh_tokens 501 is above 500`},
		{"device poll interval", "oauth: {}\nrealms:\n  - name: r1\n    oauth:\n      device_code_lifetime: 10s\n      device_poll_interval: 6s\n",
			`line 6: oauth: realm "r1": device poll interval`},
		{"unknown grant", "oauth: {}\nrealms:\n  - name: r1\n    oauth:\n      grants: [implicit]\n",
			`line 5: oauth: realm "r1": unknown grant "implicit"`},
		{"client", "oauth: {}\nrealms:\n  - name: r1\n    oauth:\n      clients:\n        - {id: c0, public: true}\n        - {id: c1}\n",
			`line 7: oauth: realm "r1": client "c1": needs a secret hash`},
		{"default lifetime in a later realm", "oauth: {}\nrealms:\n  - name: r0\n  - name: r1\n    oauth:\n      device_poll_interval: 6m\n",
			`line 6: oauth: realm "r1": device poll interval`},
	}
	dir := t.TempDir()
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(k.name, " ", "_")+".yaml")
			if err := os.WriteFile(p, []byte(k.body), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runCLI("check-config", p)
			if code != 1 || !strings.Contains(out+errOut, k.want) {
				t.Fatalf("exit %d, output %q; want exit 1 and %q", code, out+errOut, k.want)
			}
		})
	}
}
