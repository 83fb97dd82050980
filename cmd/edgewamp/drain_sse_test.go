package main

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
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
