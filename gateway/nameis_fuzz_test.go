package gateway

import (
	"encoding/json"
	"testing"
)

// FuzzNameIs: nameIs(s, t) holds exactly when encoding/json decodes the
// JSON string "s" to t, for the name's own decoding, a prefix, an
// extension and any other t.
func FuzzNameIs(f *testing.F) {
	for _, s := range []string{`\u0069d`, `\ud83d\ude00`, `\ud83d`, `\ude00x`, `\ud800\u0041`, `\ud800\ud800`, "\xff\\u0041",
		`\u0000`, `a\u0000b`, `\"q\\\/`, `\b\f\n\r\t`, `\uD83D\uDE00`, `\ud83d\u`, "\xed\xa0\x80", "\xf0\x9f\x98", `\u00e9`} {
		f.Add(s, "id")
	}
	f.Fuzz(func(t *testing.T, s, other string) {
		q := []byte(`"` + s + `"`)
		if !json.Valid(q) {
			return
		}
		var k string
		if err := json.Unmarshal(q, &k); err != nil {
			t.Fatalf("%q: valid, but %v", q, err)
		}
		ts := []string{k, other, k + "x", "\x00" + k, k + "\x00"}
		if len(k) > 0 {
			ts = append(ts, k[:len(k)-1], k[1:])
		}
		for _, tt := range ts {
			if got := nameIs([]byte(s), tt); got != (k == tt) {
				t.Fatalf("nameIs(%q, %q) = %v; encoding/json decodes it to %q", s, tt, got, k)
			}
		}
	})
}
