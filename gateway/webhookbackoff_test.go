package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestWebhookBackoffAboveMaxBackoff: max_backoff bounds every wait
// between two attempts, the first too. Before, a backoff above it was
// the first wait as configured (half to all of it, an hour here), and
// only the later ones were cut to max_backoff (known-48, cmd's review:
// "a webhook's backoff larger than its max_backoff is accepted
// silently").
func TestWebhookBackoffAboveMaxBackoff(t *testing.T) {
	laneFree(t)
	tgt := newWebhookTarget(t, "")
	e := newEnv(t, func(o *Options) {
		o.Webhooks = []Webhook{{Name: "capped", Realm: "realm1", Topic: "com.capped", URL: tgt.srv.URL,
			Backoff: time.Hour, MaxBackoff: 50 * time.Millisecond, Retries: 2}}
	})
	pub := e.dial("realm1", proto.JSON)
	waitFor(t, "the webhook's subscription", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := pub.Call(ctx, "wamp.subscription.match", []any{"com.capped"}, nil, nil)
		return err == nil && len(res.Args) > 0 && res.Args[0] != nil
	})
	tgt.status.Store(503)
	tgt.fail.Store(1)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, "com.capped", []any{1}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tgt.got:
	case <-ctx.Done():
		t.Fatalf("not delivered within 8 s after one failure (max_backoff 50ms, backoff 1h): %d attempts", tgt.attempts.Load())
	}
}
