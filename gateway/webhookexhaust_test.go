package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestWebhookRetriesExhaustedLogSpaced: a webhook configured without
// retries (retries: 0 in the YAML, negative here) whose target fails at
// once (a 500, a refused connection) drops each event after its one
// attempt; the line saying so was written for every event, so a target
// down under a stream of publications logged a warning per publication.
// It is spaced as the rejections' line is: at most one per
// rejectLogEvery a webhook, the next counting those not logged.
func TestWebhookRetriesExhaustedLogSpaced(t *testing.T) {
	laneFree(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer failing.Close()
	var logs lockedBuf
	e := newEnv(t, func(o *Options) {
		o.Logger = logs.logger()
		o.Webhooks = []Webhook{{Name: "down", Realm: "realm1", Topic: "com.t", URL: failing.URL, Retries: -1}}
	})
	waitFor(t, "the webhook's subscription", func() bool { return webhookMetricsOf(e, "down").cur.Load().subscribed.Load() })
	pub := e.dial("realm1", proto.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 20
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, "com.t", []any{i}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the events dropped", func() bool { return dropped(webhookMetricsOf(e, "down"), "retries_exhausted") == n })
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "webhook=down ") && strings.Contains(l, "dropped an event after retries") {
				out = append(out, l)
			}
		}
		return out
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "status=500") {
		t.Fatalf("%d events dropped after their attempts: %d lines, want one naming status=500:\n%s", n, len(got), strings.Join(got, "\n"))
	}
	// The next line after the spacing counts those not logged.
	webhookMetricsOf(e, "down").cur.Load().exhaustLogAt.Add(-int64(rejectLogEvery))
	if err := pub.Publish(ctx, "com.t", []any{"again"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next drop logged", func() bool { return len(lines()) == 2 })
	if l := lines()[1]; !strings.Contains(l, "unlogged=19") {
		t.Fatalf("the next line does not count the 19 drops not logged: %s", l)
	}
}
