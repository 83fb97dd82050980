package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Example joins a realm, registers a procedure, calls it, subscribes to a
// topic and receives its own publication. It needs a running router, so it
// is compiled but not run.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{
		URL:        "rs://127.0.0.1:8080",
		Realm:      "realm1",
		Serializer: proto.MsgPack,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	_, err = s.Register(ctx, "com.example.add", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		a, _ := inv.Args[0].(int64)
		b, _ := inv.Args[1].(int64)
		return &client.Result{Args: []any{a + b}}, nil
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	res, err := s.Call(ctx, "com.example.add", []any{2, 3}, nil, &client.CallOptions{Timeout: time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Args[0])

	got := make(chan *client.Event, 1)
	_, err = s.Subscribe(ctx, "com.example.", func(e *client.Event) {
		got <- e // on the session's event dispatcher: hand it over, do not block it
	}, &client.SubscribeOptions{Match: "prefix"})
	if err != nil {
		log.Fatal(err)
	}
	// A publisher does not receive its own events unless it asks to
	// (exclude_me defaults to true).
	excludeMe := false
	if err := s.Publish(ctx, "com.example.hello", []any{"world"}, nil, &client.PublishOptions{Acknowledge: true, ExcludeMe: &excludeMe}); err != nil {
		log.Fatal(err)
	}
	select {
	case e := <-got:
		fmt.Println(e.Topic, e.Args) // com.example.hello [world]
	case <-ctx.Done():
		log.Fatal(ctx.Err())
	}
}
