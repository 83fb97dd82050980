package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// bigHeaderUpstream is an HTTP server on loopback that answers every
// request 200 with a header of size bytes; it counts the answers it wrote.
func bigHeaderUpstream(t *testing.T, size int) (url string, answered *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	answered = new(atomic.Int64)
	head := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Big: " + strings.Repeat("a", size) + "\r\nContent-Length: 2\r\n\r\n{}"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if _, err := io.WriteString(c, head); err != nil {
						return
					}
					answered.Add(1)
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/", answered
}

// TestUpstreamResponseHeaderBounded: an HTTP callee's upstream or a
// webhook's target that answers with a header of 1 MiB is refused, as
// one whose body passes max_response is. Before, the default client took
// headers up to net/http's 10 MiB and held them while it read the body:
// 16 invocations in flight of an upstream that sent 9 MiB of header and
// then stalled held 144 MiB (max_concurrent's 64: about 580 MiB per
// callee, for the callee's timeout).
func TestUpstreamResponseHeaderBounded(t *testing.T) {
	laneFree(t)
	calleeURL, calleeAnswered := bigHeaderUpstream(t, 1<<20)
	hookURL, hookAnswered := bigHeaderUpstream(t, 1<<20)
	e := newEnv(t, func(o *Options) {
		o.Callees = []Callee{{Realm: "realm1", Procedure: "com.bighead", URL: calleeURL, Timeout: 5 * time.Second}}
		o.Webhooks = []Webhook{{Name: "bighead", Realm: "realm1", Topic: "com.bighead.ev", URL: hookURL, Retries: -1}}
	})
	caller := e.dial("realm1", proto.JSON)
	waitRegistered(t, caller, "com.bighead")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := caller.Call(ctx, "com.bighead", nil, nil, nil)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.URI != proto.URINetworkFailure {
		t.Fatalf("call of an upstream answering a 1 MiB header: %v, want %s (answers written: %d)", err, proto.URINetworkFailure, calleeAnswered.Load())
	}

	waitFor(t, "the webhook's subscription", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := caller.Call(ctx, "wamp.subscription.match", []any{"com.bighead.ev"}, nil, nil)
		return err == nil && len(res.Args) > 0 && res.Args[0] != nil
	})
	if err := caller.Publish(ctx, "com.bighead.ev", []any{1}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	wm := webhookMetricsOf(e, "bighead")
	waitFor(t, "the webhook's attempt to end", func() bool { return wm.delivered.Load()+dropped(wm, "retries_exhausted") == 1 })
	if wm.delivered.Load() != 0 {
		t.Fatalf("a webhook target answering a 1 MiB header counted as delivered (answers written: %d)", hookAnswered.Load())
	}
}
