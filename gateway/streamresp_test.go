package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestStreamedRouteFollowsResponseBody: a route's response.body pointer
// shapes its answer, and a call of the route streamed (Accept:
// text/event-stream) wrote the whole {"args","kwargs"} document as its
// final event all the same. The final result event now carries what the
// pointer names, as the plain answer does, and a result without it ends
// the stream with the plain answer's problem (502 upstream_error);
// progressive results stay whole documents.
func TestStreamedRouteFollowsResponseBody(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Name: "first", Method: "GET", Path: "/first", Realm: "realm1", Call: "com.sr.count", Response: Response{Body: "$/args/0"}},
			{Name: "kw", Method: "GET", Path: "/kw", Realm: "realm1", Call: "com.sr.count", Response: Response{Body: "$/kwargs/n"}},
			{Name: "missing", Method: "GET", Path: "/missing", Realm: "realm1", Call: "com.sr.count", Response: Response{Body: "$/kwargs/absent"}},
			{Name: "whole", Method: "GET", Path: "/whole", Realm: "realm1", Call: "com.sr.count"},
		}
	})
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.sr.count", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		if inv.Details["receive_progress"] == true {
			if err := inv.SendProgress([]any{1}, nil); err != nil {
				return nil, err
			}
		}
		return &client.Result{Args: []any{"done", 2}, Kwargs: map[string]any{"n": 7}}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct{ path, plain, event, data string }{
		{"/first", `"done"`, "result", `"done"`},
		{"/kw", `7`, "result", `7`},
		{"/whole", `{"args":["done",2],"kwargs":{"n":7}}`, "result", `{"args":["done",2],"kwargs":{"n":7}}`},
		{"/missing", "", "problem", URIUpstream},
	} {
		r, b := e.do("GET", c.path, "")
		if c.plain != "" && (r.StatusCode != 200 || strings.TrimSpace(string(b)) != c.plain) {
			t.Errorf("plain %s: %d %s, want 200 %s", c.path, r.StatusCode, b, c.plain)
		}
		if c.plain == "" {
			expectProblem(t, r, b, 502, URIUpstream)
		}
		resp, sse := e.stream(ctx, "GET", c.path, "")
		if resp.StatusCode != 200 {
			t.Fatalf("streamed %s: status %d", c.path, resp.StatusCode)
		}
		ev, err := sse.next()
		if err != nil || ev.event != "progress" || ev.data != `{"args":[1],"kwargs":{}}` {
			t.Fatalf("streamed %s: progress %+v (%v)", c.path, ev, err)
		}
		ev, err = sse.next()
		if err != nil || ev.event != c.event || (c.event == "result" && ev.data != c.data) || (c.event == "problem" && !strings.Contains(ev.data, c.data)) {
			t.Errorf("streamed %s: final event %+v (%v), want %s %s", c.path, ev, err, c.event, c.data)
		}
		resp.Body.Close()
	}
}
