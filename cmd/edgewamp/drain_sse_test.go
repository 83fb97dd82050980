package main

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
)

// exitsZero waits up to d for r to exit after a stop, with status 0.
func (r *router) exitsZero(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, r.logs())
		}
	case <-time.After(d):
		t.Fatalf("still running %v after SIGTERM\n%s", d, r.logs())
	}
}

// TestSIGTERMEndsEventStreamWithProblem: an SSE event stream open on the
// gateway when SIGTERM comes ends with a problem event saying the gateway
// shuts down (503 wamp.error.system_shutdown), as a stream the router ends
// otherwise does (README: "its last event a problem naming the router's
// reason, so that an EventSource reconnects"). Before, the drain ended it
// with nothing: the stream's last bytes were its last event, and a client
// could not tell a stop from a cut connection.
func TestSIGTERMEndsEventStreamWithProblem(t *testing.T) {
	g := startGatewayRouter(t)
	req, err := http.NewRequest("GET", g.base+"/wamp/realm1/events/com.example.news", nil)
	if err != nil {
		t.Fatal(err)
	}
	br := openSSE(t, req, false)
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest := sseUntil(t, br, "", "an event stream at SIGTERM")
	if !strings.Contains(rest, "event: problem") || !strings.Contains(rest, "wamp.error.system_shutdown") {
		t.Fatalf("an event stream open at SIGTERM ended with %q, want a problem event with wamp.error.system_shutdown\n%s", rest, g.logs())
	}
	g.exitsZero(t, 20*time.Second)
}

// TestSIGTERMLetsStreamedCallFinish: a call streamed as SSE through the
// gateway (progressive results) in progress when SIGTERM comes runs on
// during the drain, as a plain request in progress and a WAMP caller's
// progressive call do: its later progressive results and its final result
// reach the HTTP client, and the callee is not interrupted. Before, the
// drain's start canceled it at once (INTERRUPT to the callee, a 503
// problem "the gateway is shutting down" to the client), though the
// router's drain was waiting for that very call.
func TestSIGTERMLetsStreamedCallFinish(t *testing.T) {
	g := startGatewayRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callee := g.dial("ws://"+g.addr+"/ws", 0)
	defer callee.Close()
	release := make(chan struct{})
	interrupted := make(chan struct{}, 1)
	if _, err := callee.Register(ctx, "com.example.report", func(ictx context.Context, inv *client.Invocation) (*client.Result, error) {
		if err := inv.SendProgress([]any{"first"}, nil); err != nil {
			return nil, err
		}
		select {
		case <-release:
		case <-ictx.Done():
			interrupted <- struct{}{}
			return nil, ictx.Err()
		}
		if err := inv.SendProgress([]any{"second"}, nil); err != nil {
			return nil, err
		}
		return &client.Result{Args: []any{"report done"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", g.base+"/wamp/realm1/call/com.example.report", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	br := openSSE(t, req, true) // its first progressive result came
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	g.waitLog("shutting down", 1)
	select {
	case <-interrupted:
		t.Fatalf("the streamed call in progress at SIGTERM was interrupted at the drain's start; its client got %q\n%s", sseUntil(t, br, "", "the streamed call"), g.logs())
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	rest := sseUntil(t, br, "", "the streamed call after SIGTERM")
	if !strings.Contains(rest, `"second"`) || !strings.Contains(rest, "event: result") || !strings.Contains(rest, "report done") {
		t.Fatalf("a streamed call in progress at SIGTERM went on with %q, want its second progressive result and its final result\n%s", rest, g.logs())
	}
	g.exitsZero(t, 20*time.Second)
	if !strings.Contains(g.logs(), "drained: no call in progress") {
		t.Fatalf("the drain did not end with no call in progress:\n%s", g.logs())
	}
}
