package gateway

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestRoutePointerEscapedNamesNotAllocated: a route's pointers into the
// request's body walk its bytes (rawMember) and compare each member's
// name with the pointer's; a name written with escapes ("\u0062" is "b")
// was decoded into a string of its own for each comparison, so that a
// body of max_body (1 MiB) of such names cost a route with three body
// pointers about 855,000 allocations and 51 MB, where the same body with
// plain names of the same length cost a few hundred (a 16 MiB body_limit
// about 800 MB, for each request). Escaped names are compared as they
// are decoded, without allocating, and still match.
func TestRoutePointerEscapedNamesNotAllocated(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Method: "POST", Path: "/dev/esc", Realm: "realm1", Call: "com.escname", Args: []any{"$/body/id", "$/body/a?", "$/body/\u00e9\U0001F600?"}},
		}
	})
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.escname", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	})
	mallocs := func(body, want string) uint64 {
		t.Helper()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		resp, b := e.do("POST", "/dev/esc", body)
		runtime.ReadMemStats(&after)
		if resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("%.40s...: %d %s, want 200 %s", body, resp.StatusCode, b, want)
		}
		return after.Mallocs - before.Mallocs
	}
	// Escaped names still match: the pointers' members written with
	// escapes, a surrogate pair among them.
	mallocs(`{"\u0069d":1,"\u0061":"x","\u00e9\ud83d\ude00":true}`, `{"args":[1,"x",true],"kwargs":{}}`)
	const n = 95000 // 11 bytes each: about 1 MiB, the default body_limit
	plain := `{"id":1,` + strings.Repeat(`"bbbbbb":0,`, n) + `"z":0}`
	escaped := `{"id":1,` + strings.Repeat(`"\u0062":0,`, n) + `"z":0}`
	want := `{"args":[1,null,null],"kwargs":{}}`
	mallocs(plain, want) // warm up
	p := mallocs(plain, want)
	q := mallocs(escaped, want)
	t.Logf("%d-byte bodies: plain names %d allocations, escaped names %d", len(plain), p, q)
	if q > p+n/10 {
		t.Fatalf("a body of %d escaped names cost %d allocations, the same with plain names %d: each escaped name was decoded into a string of its own", n, q, p)
	}
}

// TestNameIsMatchesDecoded: nameIs finds a name equal to what
// encoding/json decodes it to: escapes, surrogate pairs, lone surrogates
// and bytes that are not UTF-8 (U+FFFD), prefixes and longer names not.
func TestNameIsMatchesDecoded(t *testing.T) {
	names := []string{`"\u0069d"`, `"i\u0064"`, `"\"q\\\/"`, `"\b\f\n\r\t"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00x"`,
		`"\ud800\u0041"`, `"\ud800\ud800"`, "\"\xff\\u0041\"", "\"\xe9t\\u00e9\"", `"\u00E9"`, `"\u0000"`, `""`, `"\u002f"`}
	var ts []string
	for _, q := range names {
		var k string
		if err := json.Unmarshal([]byte(q), &k); err != nil {
			t.Fatal(q, err)
		}
		ts = append(ts, k, k+"x", "x"+k)
		if len(k) > 0 {
			ts = append(ts, k[:len(k)-1], k[1:])
		}
	}
	for _, q := range names {
		var k string
		json.Unmarshal([]byte(q), &k)
		for _, tt := range ts {
			if got := nameIs([]byte(q[1:len(q)-1]), tt); got != (k == tt) {
				t.Errorf("nameIs(%s, %q) = %v, encoding/json decodes it to %q", q, tt, got, k)
			}
		}
	}
}
