package gateway

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestOpenAPIRoutesValid: the OpenAPI document of routes with the mux's
// other wildcards and with names that spell alike is still one OpenAPI
// allows: every operationId present and unique, every template of a path
// a declared path parameter of each of its operations and the reverse.
// Before, "/files/{rest...}" declared "rest" under the template
// "{rest...}", "/exact/{$}" had a template naming none, routes "GET /a/b"
// and "GET /a-b" were both GETAB, a route named "wamp-call" took the
// bridge's wampCall, and one named "---" had "".
func TestOpenAPIRoutesValid(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Method: "GET", Path: "/files/{rest...}", Realm: "realm1", Call: "com.f", Args: []any{"$/path/rest"}},
			{Method: "GET", Path: "/exact/{$}", Realm: "realm1", Call: "com.e"},
			{Method: "GET", Path: "/exact/", Realm: "realm1", Call: "com.e2"},
			{Method: "GET", Path: "/a/b", Realm: "realm1", Call: "com.ab"},
			{Method: "GET", Path: "/a-b", Realm: "realm1", Call: "com.ab2"},
			{Method: "GET", Path: "/u/{id}/{rest...}", Realm: "realm1", Call: "com.u", Args: []any{"$/path/id", "$/path/rest"}},
			{Name: "wamp-call", Method: "POST", Path: "/x", Realm: "realm1", Call: "com.x"},
			{Name: "---", Method: "POST", Path: "/y", Realm: "realm1", Call: "com.y"},
			{Name: "+++", Method: "POST", Path: "/z", Realm: "realm1", Call: "com.z"},
		}
	})
	r, body := e.do("GET", "/openapi.json", "")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", r.StatusCode, body)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	tmplRE := regexp.MustCompile(`\{([^}]*)\}`)
	ids := map[string]string{}
	ops := 0
	for path, item := range doc.Paths {
		var want []string
		for _, m := range tmplRE.FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		sort.Strings(want)
		for method, op := range item {
			ops++
			where := strings.ToUpper(method) + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", where)
			} else if other, ok := ids[op.OperationID]; ok {
				t.Errorf("%s: operationId %q is %s's too", where, op.OperationID, other)
			}
			ids[op.OperationID] = where
			var got []string
			for _, p := range op.Parameters {
				if p.In == "path" {
					got = append(got, p.Name)
				}
			}
			sort.Strings(got)
			if path == "/exact/{$}" {
				// GET /exact/ has the template /exact/: this one keeps
				// its pattern rather than take that operation's place.
				continue
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: path parameters %q, its templates %q", where, got, want)
			}
		}
	}
	if n := 7 + 9; ops != n { // the gateway's own operations and the routes'
		t.Errorf("%d operations, want %d", ops, n)
	}
}
