package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestSIGTERMLogsWebhookEventsDropped: events a webhook holds when the
// router stops (one being posted to a slow target, others queued behind
// it) are dropped, as README says; the log says how many, for which
// webhook. Before, a stop dropped them without a line (only the metric
// edgewamp_gateway_webhook_dropped_total{reason="shutdown"} counted them,
// which nothing can read once the process has exited).
func TestSIGTERMLogsWebhookEventsDropped(t *testing.T) {
	hit := make(chan struct{}, 64)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the router's close ends r's context
		hit <- struct{}{}
		select {
		case <-time.After(20 * time.Second):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(target.Close)
	g := startReloadedGateway(t, runnersYAML(nil, []string{`{realm: realm1, topic: com.example.alerts, url: "` + target.URL + `"}`}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g.waitLog("webhook subscribed", 1)
	pub := g.dial("ws://"+g.addr+"/ws", proto.JSON)
	defer pub.Close()
	for i := range 5 {
		if err := pub.Publish(ctx, "com.example.alerts", []any{i}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-hit:
	case <-ctx.Done():
		t.Fatalf("the webhook posted nothing\n%s", g.logs())
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	g.exitsZero(t, 20*time.Second)
	m := regexp.MustCompile(`webhook events dropped at shutdown.*webhook=com.example.alerts .*dropped=(\d+)`).FindStringSubmatch(g.logs())
	if m == nil {
		t.Fatalf("no log line for the webhook's events dropped at the stop:\n%s", lastLines(g.logs(), 8))
	}
	t.Logf("%s", m[0])
	if n, _ := strconv.Atoi(m[1]); n < 1 || n > 5 {
		t.Fatalf("the stop logged %d webhook events dropped, want 1 to 5 (one being posted, the others queued)", n)
	}
}
