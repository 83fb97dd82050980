package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestErrorDetailBounded: a callee's ERROR whose first argument is a
// string reaches an HTTP client with that string in args, whole, and its
// first KiB as the problem's detail, then "..."; a binary first argument
// (WAMP's JSON "\u0000" + base64) gives no detail. Before, the detail was
// the whole string: a 4 MiB one was sent twice, an 8.4 MB answer for a
// 4 MiB ERROR (counted as the two, and less when the detail's escapes grew
// it), and a binary one became a detail starting with NUL, which is
// no text for any reader of the problem.
func TestErrorDetailBounded(t *testing.T) {
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	huge := strings.Repeat("\u2028é", 1<<19) // 2.5 MiB of text, 4 MiB in JSON (U+2028 escaped)
	bin := []byte("\x00\x01binary")
	e.register(callee, "com.errdetail.huge", func(context.Context, *client.Invocation) (*client.Result, error) {
		return nil, &client.Error{URI: "com.app.failed", Args: []any{huge}}
	})
	e.register(callee, "com.errdetail.bin", func(context.Context, *client.Invocation) (*client.Result, error) {
		return nil, &client.Error{URI: "com.app.failed", Args: []any{bin}}
	})
	e.register(callee, "com.errdetail.short", func(context.Context, *client.Invocation) (*client.Result, error) {
		return nil, &client.Error{URI: "com.app.failed", Args: []any{"it broke"}}
	})

	resp, b := e.do("POST", "/wamp/realm1/call/com.errdetail.huge", `{}`)
	p := expectProblem(t, resp, b, 502, "com.app.failed")
	t.Logf("a %d-byte first argument: a %d-byte answer, a %d-byte detail", len(huge), len(b), len(p.Detail))
	var arg string
	if len(p.Args) != 1 || json.Unmarshal(p.Args[0], &arg) != nil || arg != huge {
		t.Fatalf("args do not carry the %d-byte string whole", len(huge))
	}
	if len(p.Detail) > 1<<10+3 || !strings.HasSuffix(p.Detail, "...") || !strings.HasPrefix(huge, strings.TrimSuffix(p.Detail, "...")) {
		t.Fatalf("a %d-byte detail for a %d-byte first argument (want its first KiB, then ...)", len(p.Detail), len(huge))
	}
	if len(b) > len(p.Args[0])+8<<10 {
		t.Fatalf("a %d-byte answer for %d bytes of args", len(b), len(p.Args[0]))
	}

	resp, b = e.do("POST", "/wamp/realm1/call/com.errdetail.bin", `{}`)
	p = expectProblem(t, resp, b, 502, "com.app.failed")
	if strings.HasPrefix(p.Detail, "\x00") {
		t.Fatalf("a binary first argument became the detail %q", p.Detail)
	}
	if len(p.Args) != 1 || !strings.HasPrefix(string(p.Args[0]), `"\u0000`) {
		t.Fatalf("args %s, want the binary value", p.Args)
	}

	resp, b = e.do("POST", "/wamp/realm1/call/com.errdetail.short", `{}`)
	if p = expectProblem(t, resp, b, 502, "com.app.failed"); p.Detail != "it broke" {
		t.Fatalf("detail %q, want the short first argument", p.Detail)
	}
}

// TestErrorDetailCut: a long first argument's detail is decoded from the
// start of its JSON only, cut at no escape nor surrogate pair: its first
// KiB of text, whole characters, then "...".
func TestErrorDetailCut(t *testing.T) {
	cases := []struct {
		name, arg, want string
	}{
		{"escaped ASCII", strings.Repeat(`\u0041`, 2000), strings.Repeat("A", 1024) + "..."},
		{"surrogate pairs", strings.Repeat(`\ud83d\ude00`, 1000), strings.Repeat("😀", 256) + "..."},
		{"pairs after one byte", "x" + strings.Repeat(`\uD83D\uDE00`, 1000), "x" + strings.Repeat("😀", 255) + "..."},
		{"raw runes", strings.Repeat("é", 4000), strings.Repeat("é", 512) + "..."},
		{"short", `a\"b`, `a"b`},
		{"binary", `\u0000AAFi`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := errorDetail([]byte(`["` + tc.arg + `",1]`)); got != tc.want {
				t.Fatalf("detail %q (%d bytes), want %d bytes", got, len(got), len(tc.want))
			}
		})
	}
}
