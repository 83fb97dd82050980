package edge

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClaimStreamLookupRetried: the claim store looked its bucket's stream
// up once, when it bound the bucket, and ignored a failure (a busy
// JetStream timing out, seen once under load). The stream then stayed nil
// for the node's life: every release left a delete marker in the bucket
// instead of purging the key, and the sweep of dead nodes' claims never
// ran. Now the look-up is asked again, at most once a second, until it is
// answered: a release after that leaves nothing in the bucket.
func TestClaimStreamLookupRetried(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, 30*time.Second)
	url := jsServer(t)
	a := startNode(t, "a", func(o *Options) { o.NatsURL, o.testStreamFails = url, 1 })
	waitClaims(t, 10*time.Second, a)
	time.Sleep(1100 * time.Millisecond) // past the once-a-second bound on asking again
	s := a.dial(a.ws(), proto.JSON)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	reg, err := s.Register(ctx, "com.retry.stream", h, &client.RegisterOptions{Invoke: "single"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unregister(ctx, reg); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var msgs uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := js.Stream(ctx, "KV_"+claimBucket)
		if err != nil {
			t.Fatal(err)
		}
		msgs = st.CachedInfo().State.Msgs
		if msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the claim bucket holds %d messages after the only claim was released (a delete marker: the stream never looked up again)", msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
