package main

import (
	"fmt"
	"strings"

	"github.com/edgewamp/edgewamp/proto"
)

// prefixWarnings says, one line per permission, where a permission of
// match prefix has a URI that ends inside a component ("com.app"): WAMP's
// prefix match is on the string (kept), so it also grants every URI that
// merely starts with the same letters ("com.application.secret"), which
// the operator may not mean. A warning, not a refusal: some mean it.
// Not said of the documented catch-all (""), of a URI ending in ".", nor
// of one ending in a character other than a letter or a digit
// ("wamp.session.on_", deploy/secure.yaml's: plainly meant to end inside
// its component). nil when there is none. check-config and run say them.
func (c *config) prefixWarnings() []string {
	var out []string
	for i, r := range c.Realms {
		for j, ro := range r.Roles {
			for k, p := range ro.Permissions {
				if m, ok := parseMatch(p.Match); !ok || m != proto.MatchPrefix || !endsInsideComponent(p.URI) {
					continue
				}
				out = append(out, fmt.Sprintf("realms[%d].roles[%d].permissions[%d] (realm %q, role %q): prefix %q does not end in \".\": "+
					"a prefix matches URIs as strings, so it also grants every URI that goes on with more of its last component (%q, %q); "+
					"write %q for the URIs under %s (and {uri: %s, match: exact} for %s itself), or end it in another character if that is meant",
					i, j, k, r.Name, ro.Name, p.URI, p.URI+"x", p.URI+"x.secret", p.URI+".", p.URI, p.URI, p.URI))
			}
		}
	}
	return out
}

// endsInsideComponent reports whether the prefix uri ends with a letter
// or a digit (of ASCII: a URI component's other characters are rare
// enough to read as meant).
func endsInsideComponent(uri string) bool {
	if uri == "" || strings.HasSuffix(uri, ".") {
		return false
	}
	b := uri[len(uri)-1]
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}
