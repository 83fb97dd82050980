package main

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/route"
)

// TestStarredPermissionURIRefused: Crossbar reads a permission URI with a
// "*" and no match policy as a pattern ("wamp.*" the prefix "wamp.",
// "com.*.get" the wildcard "com..get"); here "*" is an ordinary character
// of a URI, so such a permission applied to that one literal URI and to
// nothing a client calls. A configuration brought over from Crossbar
// that denied the meta API under a catch-all grant with {uri: "wamp.*",
// allow: []} was taken by check-config and run without a word, and left
// the meta API open (an anonymous session could call
// wamp.session.kill_all). Such a permission is refused, the error naming
// the form to write instead.
func TestStarredPermissionURIRefused(t *testing.T) {
	base := "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: realm1\n    anonymous: true\n    security: true\n    roles:\n      - name: anonymous\n        permissions:\n" +
		"          - {uri: \"\", match: prefix, allow: [call, register, subscribe, publish]}\n"
	for _, k := range []struct{ perm, want string }{
		{`{uri: "wamp.*", allow: []}`, `{uri: "wamp.", match: prefix}`},
		{`{uri: "com.example.*", match: prefix, allow: [call]}`, `{uri: "com.example.", match: prefix}`},
		{`{uri: "*", allow: [call]}`, `{uri: "", match: prefix}`},
		{`{uri: "com.*.get", allow: [call]}`, `{uri: "com..get", match: wildcard}`},
		{`{uri: "com.*.get", match: wildcard, allow: [call]}`, `{uri: "com..get", match: wildcard}`},
	} {
		t.Run(k.perm, func(t *testing.T) {
			cfg := base + "          - " + k.perm + "\n"
			// What it meant before: the catch-all decided, the starred
			// permission applied to nothing a client uses.
			if c, err := parseConfig([]byte(cfg), nil); err == nil {
				if rcs, err := c.realmConfigs(); err == nil {
					z := rcs[0].Authorizer.(*route.RBAC)
					t.Logf("before: the anonymous role may call wamp.session.kill_all: %v", z.Authorize("anonymous", route.ActionCall, "wamp.session.kill_all"))
				}
			}
			_, e, code := runCLI("check-config", writeFile(t, "c.yaml", cfg))
			if code != 1 || !strings.Contains(e, "not a wildcard") || !strings.Contains(e, k.want) {
				t.Fatalf("check-config: exit %d: %s\nwant 1, an error saying \"*\" is not a wildcard and suggesting %s", code, e, k.want)
			}
		})
	}
	// A URI without "*" is taken as before.
	if _, e, code := runCLI("check-config", writeFile(t, "ok.yaml", base+"          - {uri: \"wamp.\", match: prefix, allow: []}\n")); code != 0 {
		t.Fatalf("the prefix form: exit %d: %s", code, e)
	}
}

// TestLiteralStarPermissionWithExactMatch: in a loose realm (the default)
// "*" is an ordinary character of the URIs clients use, and a permission
// that says match: exact on one names that literal URI: what the operator
// wrote, and what Crossbar reads too (its starred form applies only when
// no match is given). Such a configuration started before e798be3 and
// granted its URI; since, check-config and run refused it, so an upgraded
// node did not start. It is taken again; a strict realm, where no client
// URI has a "*", still refuses it.
func TestLiteralStarPermissionWithExactMatch(t *testing.T) {
	cfg := func(check string) string {
		return "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: realm1\n    anonymous: true\n    security: true\n" + check +
			"    roles:\n      - name: anonymous\n        permissions:\n" +
			"          - {uri: \"com.example.a*b\", match: exact, allow: [call, register]}\n"
	}
	_, e, code := runCLI("check-config", writeFile(t, "loose.yaml", cfg("")))
	if code != 0 {
		t.Fatalf("check-config of an explicit exact permission on a literal \"*\" URI in a loose realm: exit %d: %s", code, e)
	}
	c, err := parseConfig([]byte(cfg("")), nil)
	if err != nil {
		t.Fatal(err)
	}
	rcs, err := c.realmConfigs()
	if err != nil {
		t.Fatal(err)
	}
	z := rcs[0].Authorizer.(*route.RBAC)
	if !z.Authorize("anonymous", route.ActionCall, "com.example.a*b") || z.Authorize("anonymous", route.ActionCall, "com.example.ab") {
		t.Fatalf("the permission does not grant its literal URI alone")
	}
	if _, e, code := runCLI("check-config", writeFile(t, "strict.yaml", cfg("    uri_check: strict\n"))); code != 1 || !strings.Contains(e, "not a wildcard") {
		t.Fatalf("strict realm: exit %d: %s\nwant 1, \"*\" refused", code, e)
	}
}
