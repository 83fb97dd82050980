package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A Client holding a single registration and a pattern subscription on
// node c, with a in its list: c dies with its claim in the store (as a
// crash leaves it). The Client moves to a, where its restore is refused
// while the claim is c's life's and retried until a takes it over; the
// procedure is then the Client's on a, and its subscription is back.
func TestClientFailoverSingleClaimOfDeadNode(t *testing.T) {
	t.Parallel()
	_, a, c := jsPair(t, "a", "c")
	ctx := ctxT(t, 30*time.Second)
	cl, err := client.Connect(ctx, client.Config{URL: c.ws(), Realm: "realm1", Serializer: proto.MsgPack},
		client.ReconnectConfig{URLs: []string{a.rs()}, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Register(ctx, "com.only", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"client"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	events := make(chan struct{}, 64)
	if err := cl.Subscribe(ctx, "com.news", func(*client.Event) { events <- struct{}{} }, &client.SubscribeOptions{Match: "prefix"}); err != nil {
		t.Fatal(err)
	}
	first, err := cl.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	killNode(c)
	caller := a.dial(a.ws(), proto.JSON)
	eventually(t, 15*time.Second, func() error {
		r, err := caller.Call(ctx, "com.only", nil, nil, nil)
		if err != nil {
			return err
		}
		if len(r.Args) != 1 || r.Args[0] != "client" {
			return fmt.Errorf("answered %v", r.Args)
		}
		return nil
	})
	eventually(t, 10*time.Second, func() error {
		if err := caller.Publish(ctx, "com.news.x", nil, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			return err
		}
		select {
		case <-events:
			return nil
		case <-time.After(100 * time.Millisecond):
			return fmt.Errorf("subscription not restored")
		}
	})
	if s, _ := cl.Session(ctx); s == first {
		t.Fatal("still on the first session")
	}
}
