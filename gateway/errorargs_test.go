package gateway

import (
	"context"
	"runtime"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestErrorArgsNotDecodedWhole: a callee's ERROR reaches an HTTP client
// as a problem document whose detail is the error's first argument when
// that is a string. The gateway found it by decoding the whole Arguments
// list into one json.RawMessage per element: an ERROR of 400,000 small
// arguments (800 KB) cost the gateway 400,000 allocations and about
// 50 MB more than the RESULT of the same list (a 16 MiB ERROR about
// 1 GB), for a string it then took from the first. Only the first element
// is looked at now. Measured against the RESULT of the same list, which
// the same router, callee and client encode and decode alike
// (allocations are counted process-wide).
func TestErrorArgsNotDecodedWhole(t *testing.T) {
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	list := make([]any, 1, 400001)
	list[0] = "boom"
	for range 400000 {
		list = append(list, 0)
	}
	e.register(callee, "com.errargs.err", func(context.Context, *client.Invocation) (*client.Result, error) {
		return nil, &client.Error{URI: "com.app.failed", Args: list}
	})
	e.register(callee, "com.errargs.res", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: list}, nil
	})
	mallocs := func(proc string, status int) uint64 {
		t.Helper()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		resp, b := e.do("POST", "/wamp/realm1/call/"+proc, `{}`)
		runtime.ReadMemStats(&after)
		if resp.StatusCode != status {
			t.Fatalf("%s: %d, want %d", proc, resp.StatusCode, status)
		}
		if status != 200 {
			if p := expectProblem(t, resp, b, status, "com.app.failed"); p.Detail != "boom" || len(p.Args) != len(list) {
				t.Fatalf("the error's problem: detail %q, %d args", p.Detail, len(p.Args))
			}
		}
		n := after.Mallocs - before.Mallocs
		t.Logf("%s: %d allocations, %d KiB", proc, n, (after.TotalAlloc-before.TotalAlloc)>>10)
		return n
	}
	mallocs("com.errargs.res", 200) // warm up both paths
	mallocs("com.errargs.err", 502)
	res := mallocs("com.errargs.res", 200)
	errs := mallocs("com.errargs.err", 502)
	if errs > res+100_000 {
		t.Fatalf("the ERROR's answer took %d allocations, the RESULT's of the same arguments %d: its %d arguments were decoded one by one", errs, res, len(list))
	}
}
