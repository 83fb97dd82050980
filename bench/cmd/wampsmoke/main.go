// Command wampsmoke checks that a running router routes: one session
// registers a procedure and subscribes to a topic, a second session calls
// the procedure and publishes to the topic, and both must arrive. It prints
// one line and exits 0 on success, 1 on failure. The release tests run it
// next to the router for each architecture (under qemu-user for arm64 and
// armv7); it is also handy after an install on a device:
//
//	wampsmoke -url ws://127.0.0.1:8080/ws -realm realm1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/ws", "router URL: ws://HOST:PORT/PATH, rs://HOST:PORT (wss://, rss:// with -insecure for a test certificate)")
	realm := flag.String("realm", "realm1", "realm to join (anonymously)")
	ser := flag.String("ser", "msgpack", "serializer: json, msgpack or cbor")
	timeout := flag.Duration("timeout", 30*time.Second, "overall deadline")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	msg, err := smoke(ctx, *url, *realm, *ser)
	if err != nil {
		fmt.Printf("wampsmoke: FAIL (%s/%s): %v\n", runtime.GOOS, runtime.GOARCH, err)
		os.Exit(1)
	}
	fmt.Printf("wampsmoke: ok (%s/%s): %s\n", runtime.GOOS, runtime.GOARCH, msg)
}

func smoke(ctx context.Context, url, realm, serName string) (string, error) {
	var ser proto.Serializer
	switch serName {
	case "json":
		ser = proto.JSON
	case "msgpack":
		ser = proto.MsgPack
	case "cbor":
		ser = proto.CBOR
	default:
		return "", fmt.Errorf("unknown serializer %q", serName)
	}
	cfg := client.Config{URL: url, Realm: realm, Serializer: ser}
	callee, err := client.Dial(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("first session: %w", err)
	}
	defer callee.Close()
	const procedure, topic = "edgewamp.smoke.add", "edgewamp.smoke.event"
	if _, err := callee.Register(ctx, procedure, func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		if len(inv.Args) != 2 {
			return nil, errors.New("want two arguments")
		}
		a, ok1 := inv.Args[0].(int64)
		b, ok2 := inv.Args[1].(int64)
		if !ok1 || !ok2 {
			return nil, errors.New("want two integers")
		}
		return &client.Result{Args: []any{a + b}}, nil
	}, nil); err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	events := make(chan *client.Event, 1)
	if _, err := callee.Subscribe(ctx, topic, func(ev *client.Event) {
		select {
		case events <- ev:
		default:
		}
	}, nil); err != nil {
		return "", fmt.Errorf("subscribe: %w", err)
	}

	caller, err := client.Dial(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("second session: %w", err)
	}
	defer caller.Close()
	res, err := caller.Call(ctx, procedure, []any{20, 22}, nil, nil)
	if err != nil {
		return "", fmt.Errorf("call: %w", err)
	}
	if len(res.Args) != 1 || res.Args[0] != int64(42) {
		return "", fmt.Errorf("call returned %v, want [42]", res.Args)
	}
	stamp := time.Now().Format(time.RFC3339Nano)
	if err := caller.Publish(ctx, topic, []any{stamp}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	select {
	case ev := <-events:
		if len(ev.Args) != 1 || ev.Args[0] != stamp {
			return "", fmt.Errorf("event carried %v, want [%s]", ev.Args, stamp)
		}
	case <-ctx.Done():
		return "", errors.New("no event before the deadline")
	}
	return fmt.Sprintf("call %s(20, 22) = 42, event on %s delivered", procedure, topic), nil
}
