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

// allocatedBy returns the bytes the process allocated while f ran.
func allocatedBy(f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

// A route's arguments are built from JSON pointers into the request's
// body (and its response from one into the call's result), which
// encoding/json decoded whole into Go values first: a body of max_body
// (1 MiB) of empty objects, "[{},{},...]" beside the one member the route
// reads, made about 47 MB of allocations and 34 MB of live values (a
// map for every 3 bytes), before the request was admitted in flight, for
// a member of a few bytes; a callee's large result the same for the
// response's pointer. One address's connections decoding such bodies at
// once held gigabytes. The pointers now walk the JSON as it is, and a
// value taken whole goes on as its bytes: what a request allocates stays
// proportionate to its body.
func TestRouteBodyPointerDoesNotDecodeTheWholeBody(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Method: "POST", Path: "/things/{id}", Realm: "realm1", Call: "com.things.put",
				Kwargs: map[string]any{"id": "$/path/id", "name": "$/body/name", "n": "$/body/n|int?"}},
			{Method: "GET", Path: "/things/{id}", Realm: "realm1", Call: "com.things.get",
				Args: []any{"$/path/id"}, Response: Response{Body: "$/kwargs/name"}},
		}
	})
	callee := e.dial("realm1", proto.JSON)
	pad := strings.Repeat("{},", 170000) + "{}" // 510 KB
	// The result: 170,000 empty strings (encoding/json decodes each into
	// an interface, 16 bytes beside the slice's 16: about 30 times their
	// 3 bytes), which the callee's client encodes cheaply.
	big := map[string]any{"name": "big", "pad": make([]string, 170000)}
	e.register(callee, "com.things.put", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Kwargs: inv.Kwargs}, nil
	})
	e.register(callee, "com.things.get", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Kwargs: big}, nil
	})
	body := `{"name":"lamp","n":7,"pad":[` + pad + `]}`
	do := func(method, path, body string) string {
		resp, b := e.do(method, path, body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return string(b)
	}
	do("POST", "/things/1", `{"name":"warm"}`) // sessions, buffers
	var got string
	n := allocatedBy(func() { got = do("POST", "/things/1", body) })
	if got != `{"args":[],"kwargs":{"id":"1","n":7,"name":"lamp"}}` {
		t.Fatalf("POST /things/1: %s", got)
	}
	// Reading the body (growing its buffer) and the call: a few times
	// the body; decoded whole, 24 MB (48 times it).
	t.Logf("POST with a %d-byte body: %d bytes allocated", len(body), n)
	if n > uint64(8*len(body)) {
		t.Errorf("POST with a %d-byte body allocated %.1f MB, want under 8 times the body", len(body), float64(n)/1e6)
	}
	n = allocatedBy(func() { got = do("GET", "/things/1", "") })
	if got != `"big"` {
		t.Fatalf("GET /things/1: %s", got)
	}
	// The callee's encoding, the router's and the gateway's copies of
	// the 510 KB result: a few times it; decoded whole, 13 MB more.
	t.Logf("GET of a 510 KB result: %d bytes allocated", n)
	if n > 12<<20 {
		t.Errorf("GET of a 510 KB result allocated %.1f MB, want under 12 MiB", float64(n)/1e6)
	}
}

// The pointers find in a body's bytes what they found in its decoded
// value: the last of repeated names, names written with escapes, array
// indexes without leading zeros, and a value taken whole goes on as an
// equal JSON value.
func TestRawPointerLookupMatchesDecoded(t *testing.T) {
	body := ` { "a" : [ 1 , {"b":"x<y","b":"\u00e9"} , [] , null ], "\u0063":{"d":-1.5e3},"c":{"e":true}, "s":"7", "n": 12 } `
	raw, err := asRawJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := decodeJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"$", "$/a", "$/a/0", "$/a/1", "$/a/1/b", "$/a/2", "$/a/3", "$/a/4", "$/a/01", "$/a/-1", "$/a/x",
		"$/c", "$/c/e", "$/c/d", "$/s", "$/s|int", "$/n|string", "$/n|float", "$/c|int", "$/a/1/b|json", "$/missing", "$/a/0/z"} {
		p, err := parsePointer(src)
		if err != nil {
			t.Fatal(err)
		}
		render := func(ctx any) string {
			v, found := lookup(ctx, p.tokens)
			if !found {
				return "absent"
			}
			v, err := convert(v, p)
			if err != nil {
				return "error"
			}
			b, err := jsonMarshal(v)
			if err != nil {
				return "error " + err.Error()
			}
			var out any
			if err := json.Unmarshal(b, &out); err != nil {
				return "bad JSON " + string(b)
			}
			c, _ := json.Marshal(out) // canonical: sorted names
			return string(c)
		}
		if got, want := render(raw), render(dec); got != want {
			t.Errorf("%s: %s from the bytes, %s decoded", src, got, want)
		}
	}
	for _, bad := range []string{`{"a":1} x`, `{"a":`, ``, `[1,]`} {
		if _, err := asRawJSON([]byte(bad)); err == nil {
			t.Errorf("%q taken for JSON", bad)
		}
	}
}

// "|json" parses a string of the request as JSON: it was decoded into Go
// values and written again, 48 times a body's string of empty objects,
// before the request was admitted. It is now checked and passed on as
// its bytes, as a body's value is.
func TestRouteJSONConversionDoesNotDecode(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{{Method: "POST", Path: "/sink", Realm: "realm1", Publish: "com.sink",
			Args: []any{"$/body/x|json"}, Acknowledge: true}}
	})
	body := `{"x":"[` + strings.Repeat("{},", 170000) + `{}]"}`
	do := func(body string) {
		resp, b := e.do("POST", "/sink", body)
		if resp.StatusCode != 200 {
			t.Fatalf("POST /sink: %d %s", resp.StatusCode, b)
		}
	}
	do(`{"x":"[1]"}`) // sessions, buffers
	n := allocatedBy(func() { do(body) })
	// The value goes on whole (checked, compacted, built into the
	// arguments, checked as WAMP, handed to the router): about 10 times
	// the body; decoded, 29 MB (57 times).
	t.Logf("POST with a %d-byte body: %d bytes allocated", len(body), n)
	if n > uint64(16*len(body)) {
		t.Errorf("POST with a %d-byte body allocated %.1f MB, want under 16 times the body", len(body), float64(n)/1e6)
	}
	for _, bad := range []string{`{"x":"[1,"}`, `{"x":"1 2"}`, `{"x":3}`} {
		if resp, b := e.do("POST", "/sink", bad); resp.StatusCode != 400 {
			t.Errorf("POST /sink %s: %d %s, want 400", bad, resp.StatusCode, b)
		}
	}
}
