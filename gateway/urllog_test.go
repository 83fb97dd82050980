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

// TestRunnerLogLinesNameNoURLSecret: the gateway's lines naming a
// webhook's or an HTTP callee's URL (subscribed, registered, events
// dropped at shutdown) name its scheme, host and port only. Hook URLs
// carry their credential in the path (Slack's and Discord's
// /services/T000/B000/XXXX) or the query (?token=), and a user name may
// be a token too: before, only the password was masked, so each
// subscription, registration and stop wrote the secret to the log.
func TestRunnerLogLinesNameNoURLSecret(t *testing.T) {
	laneFree(t)
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // held, so that the stop drops the event
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hook.Close()
	defer close(release)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`1`)) }))
	defer upstream.Close()
	secrets := []string{"T0SECRET", "B0SECRET", "XXSECRET", "qsecret", "usersecret", "pwsecret", "rpcsecret", "tksecret"}
	hookURL := strings.Replace(hook.URL, "http://", "http://usersecret:pwsecret@", 1) + "/services/T0SECRET/B0SECRET/XXSECRET?token=qsecret"
	var logs lockedBuf
	e := newEnv(t, func(o *Options) {
		o.Logger = logs.logger()
		o.Webhooks = []Webhook{{Name: "slack", Realm: "realm1", Topic: "com.t", URL: hookURL}}
		o.Callees = []Callee{{Name: "inv", Realm: "realm1", Procedure: "com.inv", URL: upstream.URL + "/rpcsecret?token=tksecret"}}
	})
	admin := e.dial("realm1", proto.JSON)
	waitRegistered(t, admin, "com.inv")
	waitFor(t, "the webhook's subscription", func() bool { return webhookMetricsOf(e, "slack").cur.Load().subscribed.Load() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := admin.Publish(ctx, "com.t", []any{1}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event being posted", func() bool { return webhookMetricsOf(e, "slack").cur.Load().queued.Load() > 0 })
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	e.gw.Shutdown(sctx)
	out := logs.String()
	for _, want := range []string{"gateway: webhook subscribed", "gateway: HTTP callee registered", "gateway: webhook events dropped at shutdown"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no line %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		for _, s := range secrets {
			if strings.Contains(l, s) {
				t.Errorf("a log line names the URL's secret %q: %s", s, l)
			}
		}
		switch {
		case strings.Contains(l, "webhook=slack") && strings.Contains(l, "url="):
			if !strings.Contains(l+" ", "url="+hook.URL+" ") {
				t.Errorf("the webhook's line does not name its scheme, host and port (%s): %s", hook.URL, l)
			}
		case strings.Contains(l, "callee=inv") && strings.Contains(l, "url="):
			if !strings.Contains(l+" ", "url="+upstream.URL+" ") {
				t.Errorf("the callee's line does not name its scheme, host and port (%s): %s", upstream.URL, l)
			}
		}
	}
}
