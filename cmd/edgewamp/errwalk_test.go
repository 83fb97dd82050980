package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestManyErrorsNamedInOneWalk: the rewriting of yaml's errors into
// messages that name each key (cleanYAMLError) walked the whole document
// once per error, building every key's dotted path each time: the work
// grew with the errors times the file. A fleet's file of 5,000 users
// generated with one mistyped key (passwd: for password:) kept
// check-config (the unit's ExecStartPre, whose TimeoutStartSec is 30 s,
// and the .deb's upgrade check) and every SIGHUP busy 31 s; 30,000
// unknown top-level keys (289 KB) took 40 s, and 40 keys each over a
// mapping 10,000 deep (1.6 MB) 333 s and 768 MB. Measured here by
// allocations, not time: refusing twice the errors in twice the file
// must cost about twice, not four times, as much.
func TestManyErrorsNamedInOneWalk(t *testing.T) {
	fleet := func(n int) []byte {
		var b strings.Builder
		b.WriteString("realms:\n  - name: fleet\n    security: true\n    roles: [{name: dev, permissions: [{uri: com.x., match: prefix, allow: [call]}]}]\n    users:\n")
		for i := range n {
			fmt.Fprintf(&b, "      - authid: dev%d\n        role: dev\n        passwd: \"x\"\n        secret: %q\n", i, "0123456789abcdef")
			// A wrong-typed value too, which typeError names (valuePaths).
			fmt.Fprintf(&b, "        cryptosign_keys: {a: 1}\n")
		}
		return []byte(b.String())
	}
	refuse := func(n int) float64 {
		data := fleet(n)
		_, err := parseConfig(data, nil)
		if err == nil {
			t.Fatalf("%d users with an unknown key: taken", n)
		}
		last := fmt.Sprintf("key passwd is not a known configuration key (at realms[0].users[%d].passwd); did you mean password?", n-1)
		typed := fmt.Sprintf("realms[0].users[%d].cryptosign_keys takes a list, not a mapping", n-1)
		if !strings.Contains(err.Error(), last) || !strings.Contains(err.Error(), typed) {
			t.Fatalf("%d users: the error does not name the last user's keys (%q, %q):\n%.600s", n, last, typed, err.Error()[max(0, len(err.Error())-600):])
		}
		return testing.AllocsPerRun(1, func() { parseConfig(data, nil) })
	}
	small, large := refuse(250), refuse(500)
	if large > 2.6*small {
		t.Errorf("refusing 250 users' unknown keys: %.0f allocations; 500 users': %.0f (%.1f times: the work grows with the errors times the file)", small, large, large/small)
	}
}
