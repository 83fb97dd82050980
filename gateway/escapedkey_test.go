package gateway

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestBodyMemberNameEscaped: a bridge body's member names are JSON
// strings, which a client may write with escapes ({"\u0061rgs":[1]} is
// {"args":[1]} to any JSON parser, and some encoders escape characters
// they need not). splitBody compared the raw bytes between the quotes, so
// such a body was refused 400 "unknown member \"\\\\u0061rgs\"", and a
// member given once escaped and once not was taken for two. The name is
// now decoded before it is compared (only when it holds a backslash: the
// plain names cost nothing more).
func TestBodyMemberNameEscaped(t *testing.T) {
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.echo", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args, Kwargs: inv.Kwargs}, nil
	})
	for _, body := range []string{
		`{"\u0061rgs":[1],"kw\u0061rgs":{"k":"v"},"\u006fptions":{"timeout":5000}}`,
		`{"\u0041rgs":[1]}`, // "Args": refused as "Args" is
	} {
		resp, b := e.do("POST", "/wamp/realm1/call/com.echo", body)
		if strings.Contains(body, `\u0041`) {
			p := expectProblem(t, resp, b, 400, proto.URIInvalidArgument)
			if p.Detail != `unknown member "Args" (want args, kwargs, options)` {
				t.Fatalf("%s: detail %q, want the decoded name", body, p.Detail)
			}
			continue
		}
		var doc struct {
			Args   []any          `json:"args"`
			Kwargs map[string]any `json:"kwargs"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &doc) != nil || len(doc.Args) != 1 || doc.Args[0] != 1.0 || doc.Kwargs["k"] != "v" {
			t.Fatalf("%s: %d %s, want 200 with args [1] and kwargs {\"k\":\"v\"}", body, resp.StatusCode, b)
		}
	}
	// Given twice, once escaped.
	resp, b := e.do("POST", "/wamp/realm1/call/com.echo", `{"args":[1],"\u0061rgs":[2]}`)
	if p := expectProblem(t, resp, b, 400, proto.URIInvalidArgument); p.Detail != `member "args" given twice` {
		t.Fatalf("args given twice, once escaped: detail %q", p.Detail)
	}
	// A publication's body is split the same way.
	resp, b = e.do("POST", "/wamp/realm1/publish/com.t", `{"\u0061rgs":[1],"options":{"acknowledge":true}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("a publication with an escaped member name: %d %s, want 200", resp.StatusCode, b)
	}
}

// TestSplitBodyPlainNamesNoAlloc: splitBody decodes a member name only
// when it holds a backslash, so plain names allocate nothing. Measured
// apart from any router (AllocsPerRun counts every goroutine's
// allocations: the router, callee and gateway of a test, or what an
// earlier test left closing, made it report 1 now and then), and the
// least of a few tries: splitBody's own allocation would be in each.
func TestSplitBodyPlainNamesNoAlloc(t *testing.T) {
	plain := []byte(`{"args":[1],"kwargs":{}}`)
	least := math.Inf(1)
	for range 5 {
		least = min(least, testing.AllocsPerRun(100, func() { splitBody(plain) }))
		if least == 0 {
			return
		}
	}
	t.Errorf("splitBody of plain member names allocates %v times", least)
}
