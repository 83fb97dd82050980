package gateway

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestWebhookDropsSayWhy: an event a webhook drops because its target
// refused it (a 3xx, which is not followed, a 404) or because every
// attempt failed (a TLS target whose certificate is not trusted) is logged
// with the target's answer or the last attempt's error, so that the
// operator of a misconfigured webhook can tell why nothing arrives.
// Before, a refusal dropped every event with no line at all (the metric
// only), and the line after the retries said neither the status nor the
// error. Refusals are logged at most one line per rejectLogEvery per
// webhook, the next one counting those not logged: a target refusing at
// once, at the publications' rate, does not flood the log.
func TestWebhookDropsSayWhy(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	missing := httptest.NewServer(http.NotFoundHandler())
	defer missing.Close()
	untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0) // its handshakes fail
	untrusted.StartTLS()
	defer untrusted.Close()
	var logs lockedBuf
	e := newEnv(t, func(o *Options) {
		o.Logger = logs.logger()
		o.Webhooks = []Webhook{
			{Name: "moved", Realm: "realm1", Topic: "com.t", URL: redirect.URL},
			{Name: "missing", Realm: "realm1", Topic: "com.t", URL: missing.URL + "/nohook"},
			{Name: "untrusted", Realm: "realm1", Topic: "com.t", URL: untrusted.URL, Retries: 1, Backoff: 10 * time.Millisecond},
		}
	})
	names := []string{"moved", "missing", "untrusted"}
	waitFor(t, "the webhooks' subscriptions", func() bool {
		for _, n := range names {
			if !webhookMetricsOf(e, n).cur.Load().subscribed.Load() {
				return false
			}
		}
		return true
	})
	pub := e.dial("realm1", proto.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 3
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, "com.t", []any{i}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the events dropped", func() bool {
		return dropped(webhookMetricsOf(e, "moved"), "rejected") == n && dropped(webhookMetricsOf(e, "missing"), "rejected") == n &&
			dropped(webhookMetricsOf(e, "untrusted"), "retries_exhausted") == n
	})
	if elsewhere.Load() != 0 {
		t.Fatalf("the redirect was followed: %d requests reached its target", elsewhere.Load())
	}
	lines := func(webhook string) []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "webhook="+webhook+" ") && strings.Contains(l, "dropped") {
				out = append(out, l)
			}
		}
		return out
	}
	for _, c := range []struct{ name, want string }{{"moved", "status=307"}, {"missing", "status=404"}} {
		got := lines(c.name)
		if len(got) != 1 || !strings.Contains(got[0], c.want) {
			t.Fatalf("webhook %s: %d lines about its dropped events, want one saying %s:\n%s", c.name, len(got), c.want, strings.Join(got, "\n"))
		}
	}
	if got := lines("untrusted"); len(got) != 1 || !strings.Contains(got[0], "certificate") {
		t.Fatalf("webhook untrusted: want one line (spaced: TestWebhookRetriesExhaustedLogSpaced) naming the certificate error:\n%s", strings.Join(got, "\n"))
	}
	// The next refusal after the spacing says how many were not logged.
	wr := webhookMetricsOf(e, "missing").cur.Load()
	wr.rejectLogAt.Add(-int64(rejectLogEvery))
	if err := pub.Publish(ctx, "com.t", []any{"again"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next refusal logged", func() bool { return len(lines("missing")) == 2 })
	if l := lines("missing")[1]; !strings.Contains(l, "unlogged="+"2") {
		t.Fatalf("the next line does not count the 2 refusals not logged: %s", l)
	}
}
