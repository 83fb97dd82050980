package gateway

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestStreamedCallFailingAtOnceAnswersItsStatus: a call streamed as SSE
// (Accept: text/event-stream) sent its status, 200 or the route's
// response.status, before the call's outcome was known: a call that
// failed before any progressive result (a mapped error, no callee, an
// error of the callee's) was a 200 (or 201) stream carrying one problem
// event, which clients checking the status (EventSource, curl -f,
// monitors) took for a success. The status is now held until the first
// progressive result, the outcome or the first keepalive (nothing more is
// held than before: the stream's queue): a call failing before them is
// answered as its plain request is, with the problem's status and
// document; one failing after a progressive result still ends its stream
// with a problem event.
func TestStreamedCallFailingAtOnceAnswersItsStatus(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Name: "state", Method: "GET", Path: "/devices/{id}/state", Realm: "realm1", Call: "com.ss.state",
				Args: []any{"$/path/id"}, Errors: map[string]int{"com.ss.no_device": 404}, Response: Response{Status: 201}},
			{Name: "gone", Method: "GET", Path: "/gone", Realm: "realm1", Call: "com.ss.unregistered"},
		}
	})
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.ss.state", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		switch inv.Args[0] {
		case "none":
			return nil, &client.Error{URI: "com.ss.no_device"}
		case "broken":
			return nil, &client.Error{URI: "com.ss.broken"}
		case "late":
			if err := inv.SendProgress([]any{1}, nil); err != nil {
				return nil, err
			}
			return nil, &client.Error{URI: "com.ss.no_device"}
		}
		return &client.Result{Args: []any{"on"}}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		path   string
		status int
		uri    string
	}{{"/devices/none/state", 404, "com.ss.no_device"}, {"/devices/broken/state", 502, "com.ss.broken"},
		{"/gone", 404, proto.URINoSuchProcedure}} {
		plain, pb := e.do("GET", c.path, "")
		resp, _ := e.stream(ctx, "GET", c.path, "")
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" || plain.StatusCode != c.status {
			t.Errorf("streamed %s failing at once: %d %q %.120s; want the plain answer's %d problem (plain: %d %.80s)",
				c.path, resp.StatusCode, resp.Header.Get("Content-Type"), b, c.status, plain.StatusCode, pb)
			continue
		}
		expectProblem(t, resp, b, c.status, c.uri)
	}
	resp, sse := e.stream(ctx, "GET", "/devices/1/state", "")
	if ev, err := sse.next(); resp.StatusCode != 201 || resp.Header.Get("Content-Type") != "text/event-stream" || err != nil || ev.event != "result" {
		t.Errorf("streamed success: %d %q, first event %+v (%v); want 201 text/event-stream, result", resp.StatusCode, resp.Header.Get("Content-Type"), ev, err)
	}
	resp, sse = e.stream(ctx, "GET", "/devices/late/state", "")
	if resp.StatusCode != 201 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("streamed call failing after a progressive result: %d %q, want 201 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if ev, err := sse.next(); err != nil || ev.event != "progress" {
		t.Fatalf("first event %+v (%v), want progress", ev, err)
	}
	if ev, err := sse.next(); err != nil || ev.event != "problem" {
		t.Fatalf("last event %+v (%v), want problem", ev, err)
	}
}
