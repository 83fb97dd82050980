package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestOneLineFileErrorsNamedInLinearTime: cleanYAMLError names the key
// of each of yaml's errors from its line (yaml gives no column), and
// wrote out the path of every key or value of the kind asked on that
// line; a configuration generated as one line of JSON (YAML reads JSON)
// has every key on line 1, so the work grew with the errors times the
// file again: 5,000 users with one mistyped key (passwd: for password:,
// 374 KB) kept check-config busy 19 s on a loaded 2-core machine, and
// 10,000 users past the unit's TimeoutStartSec=30s. Measured by
// allocations, not time: twice the errors in twice the file must cost
// about twice as much. The messages are the same (a key named where it
// alone is on its line).
func TestOneLineFileErrorsNamedInLinearTime(t *testing.T) {
	fleet := func(n int) []byte {
		users := make([]map[string]any, n)
		for i := range users {
			users[i] = map[string]any{"authid": fmt.Sprintf("dev%d", i), "role": "dev", "passwd": "x",
				"secret": "0123456789abcdef", "cryptosign_keys": map[string]int{"a": 1}}
		}
		b, err := json.Marshal(map[string]any{"realms": []any{map[string]any{"name": "fleet", "security": true,
			"roles": []any{map[string]any{"name": "dev"}}, "users": users}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	refuse := func(n int) float64 {
		data := fleet(n)
		_, err := parseConfig(data, nil)
		if err == nil {
			t.Fatalf("%d users with an unknown key: taken", n)
		}
		for _, want := range []string{"line 1: key passwd is not a known configuration key", "line 1: a value takes a list, not a mapping"} {
			if c := strings.Count(err.Error(), want); c != n {
				t.Fatalf("%d users: %d errors %q, want %d:\n%.600s", n, c, want, n, err.Error())
			}
		}
		return testing.AllocsPerRun(1, func() { parseConfig(data, nil) })
	}
	small, large := refuse(250), refuse(500)
	if large > 2.6*small {
		t.Errorf("refusing 250 users' errors on one line: %.0f allocations; 500 users': %.0f (%.1f times: the work grows with the errors times the file)", small, large, large/small)
	}
}
