package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestRunnerHostHeader: a callee's or webhook's "host" among its headers
// (any case) is the request's Host, as the headers are documented to be
// sent: an upstream behind a virtual-hosting proxy or ingress reached by
// address needs it. Before, net/http's client dropped it (it writes
// Request.Host, not Header["Host"]) and the upstream saw the URL's
// host.
func TestRunnerHostHeader(t *testing.T) {
	laneFree(t)
	hosts := make(chan string, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hosts <- r.Host + " " + r.Header.Get("X-Edgewamp-Procedure")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`1`))
	}))
	t.Cleanup(up.Close)
	e := newEnv(t, func(o *Options) {
		o.Callees = []Callee{{Realm: "realm1", Procedure: "com.vhost", URL: up.URL, Headers: map[string]string{"Host": "api.internal"}}}
		o.Webhooks = []Webhook{{Realm: "realm1", Topic: "com.vhost.ev", URL: up.URL, Headers: map[string]string{"host": "hooks.internal:8443"}}}
	})
	caller := e.dial("realm1", proto.JSON)
	waitRegistered(t, caller, "com.vhost")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := caller.Call(ctx, "com.vhost", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if h := <-hosts; h != "api.internal com.vhost" {
		t.Fatalf("the callee's upstream saw Host %q, want api.internal", h)
	}
	waitFor(t, "the webhook's subscription", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := caller.Call(ctx, "wamp.subscription.match", []any{"com.vhost.ev"}, nil, nil)
		return err == nil && len(res.Args) > 0 && res.Args[0] != nil
	})
	if err := caller.Publish(ctx, "com.vhost.ev", []any{1}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-hosts:
		if h != "hooks.internal:8443 " {
			t.Fatalf("the webhook's target saw Host %q, want hooks.internal:8443", h)
		}
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
}
