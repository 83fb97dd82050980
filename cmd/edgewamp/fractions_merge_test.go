package main

import (
	"strings"
	"testing"
)

// A YAML merge key (`<<:` with a mapping, an alias of one, or a list of
// them) gives its members to the mapping it is in, and yaml decodes them
// as if they were written there: a fraction among them was not refused
// (fractions matched the mapping's keys to fields by name, and no field
// is named "<<"), so `limits: {<<: {max_connections_per_address: 0.5}}`
// turned the per-address bound off, which b0608dd refuses written
// directly, and check-config said ok.
func TestConfigFractionInMergeKeyRefused(t *testing.T) {
	cases := []struct{ body, want string }{
		{"limits:\n  <<: {max_connections_per_address: 0.5}\n", "line 2: limits.max_connections_per_address takes a whole number, not `0.5`"},
		{"limits:\n  <<: [{calls_in_flight: 8}, {auth_failures: {block_after: 0.9}}]\n", "line 2: limits.auth_failures.block_after takes a whole number, not `0.9`"},
		// An anchor where any value goes (a route's args), merged.
		{"gateway:\n  routes:\n    - {name: r, method: POST, path: /x, realm: realm1, call: com.x, kwargs: &a {loops: 1.5}}\n<<: *a\n", "line 3: loops takes a whole number, not `1.5`"},
		{"limits:\n  <<: {calls_in_flight: 2.0}\n", ""},
	}
	for _, k := range cases {
		_, e, code := runCLI("check-config", writeFile(t, "c.yaml", k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("%q: exit %d, %q; want %q", k.body, code, e, k.want)
		}
	}
}
