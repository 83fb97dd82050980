package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// What one hostile HTTP client could make the gateway hold, measured.

// TestSSEFanOutBuildsOneFrame: one client opens many event streams whose
// subscriptions (distinct prefix patterns) all match one topic, then
// publishes one large event to it. The router delivers one EVENT per
// subscription, so that the gateway's session receives the same
// publication once per stream; it must render it once per session and
// share that frame, not make a copy per stream: a 256 KiB publication to
// 200 streams made the gateway allocate 200 copies (50 MiB), on the event
// loop (measured against the binary: 500 streams and four 900 KB
// publications took the router from 43 MB to 731 MB of RSS, each
// publication holding an event loop for 0.3 to 1.4 s).
func TestSSEFanOutBuildsOneFrame(t *testing.T) {
	e := newEnv(t, nil)
	const streams, size = 200, 256 << 10
	topic := "c" + strings.Repeat("x", streams+10)
	var got atomic.Int64 // streams that received the event whole
	for i := 0; i < streams; i++ {
		c, err := net.Dial("tcp", e.gw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /wamp/realm1/events/%s?match=prefix HTTP/1.1\r\nHost: localhost\r\n\r\n", topic[:i+1])
		go func() {
			buf := make([]byte, 32<<10)
			n := 0
			for {
				k, err := c.Read(buf)
				n += k
				if err != nil {
					return
				}
				if n > size {
					got.Add(1)
					io.Copy(io.Discard, c)
					return
				}
			}
		}()
	}
	waitFor(t, "the streams", func() bool { return e.gw.streams.Load() == streams })
	// Every stream subscribed before the publication.
	waitFor(t, "the subscriptions", func() bool {
		n := 0
		for _, q := range e.gw.queues {
			ch := make(chan int, 1)
			q.post(func() {
				k := 0
				for _, ip := range e.gw.pool.ids {
					for _, sl := range ip.slots {
						if s := readySess(sl); s != nil && s.q == q {
							for _, se := range s.subs {
								k += len(se.sinks)
							}
						}
					}
				}
				ch <- k
			})
			n += <-ch
		}
		return n == streams
	})
	body := `{"args":["` + strings.Repeat("a", size) + `"]}`
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, b := e.do("POST", "/wamp/realm1/publish/"+topic, body)
	if r.StatusCode != 202 {
		t.Fatalf("publish: %d %s", r.StatusCode, b)
	}
	waitFor(t, "every stream's event", func() bool { return got.Load() == streams })
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("one %d KiB publication to %d streams: %.1f MiB allocated", size>>10, streams, float64(alloc)/(1<<20))
	// One frame per gateway session (2 here), the request body and the
	// router's own copies: a few MiB. A frame per stream is 50 MiB.
	if alloc > 16<<20 {
		t.Fatalf("one %d KiB publication to %d streams of one client allocated %.1f MiB: a frame per stream", size>>10, streams, float64(alloc)/(1<<20))
	}
}

// TestSSEStreamsLeaveRequestSlots: event streams last as long as their
// clients want; they have bounds of their own (MaxStreams,
// MaxStreamsPerClient). Counted among the requests in flight, a client's
// streams took the slots of the principal every anonymous client shares
// (1000 streams from one address and 24 from another, and every anonymous
// call and publication of the realm got 429 for as long as they stayed
// open) and, past MaxInFlight, every principal's (503).
func TestSSEStreamsLeaveRequestSlots(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxInFlight = 4
		o.Limits.MaxInFlightPerIdentity = 4
		o.Limits.SessionIdle = time.Second
		o.APIKeys = []APIKey{{Name: "k", Key: "key-0123456789abcdef", Realm: "realm1", AuthID: "svc", Role: "r"}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var sse []*sseReader
	for i := 0; i < 4; i++ {
		r, rd := e.stream(ctx, "GET", "/wamp/realm1/events/com.slots", "")
		if r.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, r.StatusCode)
		}
		sse = append(sse, rd)
	}
	waitFor(t, "four streams", func() bool { return e.gw.streams.Load() == 4 })
	// Another anonymous client, and another principal, are served.
	r, b := e.do("POST", "/wamp/realm1/publish/com.slots", `{"args":[1],"options":{"acknowledge":true}}`)
	if r.StatusCode != 200 {
		t.Fatalf("an anonymous publication while another client holds 4 streams: %d %s", r.StatusCode, b)
	}
	r, b = e.do("POST", "/wamp/realm1/publish/com.other", `{}`, "X-API-Key", "key-0123456789abcdef")
	if r.StatusCode != 202 {
		t.Fatalf("another principal's publication while a client holds 4 streams: %d %s", r.StatusCode, b)
	}
	for i, rd := range sse {
		if ev, err := rd.next(); err != nil || !strings.Contains(ev.data, `"args":[1]`) {
			t.Fatalf("stream %d: %+v %v", i, ev, err)
		}
	}
	// The streams' principal is busy while they last: the janitor does
	// not close the sessions they are on.
	e.gw.pool.sweep(time.Now().Add(time.Hour))
	r, b = e.do("POST", "/wamp/realm1/publish/com.slots", `{"args":[2],"options":{"acknowledge":true}}`, "X-API-Key", "key-0123456789abcdef")
	if r.StatusCode != 200 {
		t.Fatalf("publish: %d %s", r.StatusCode, b)
	}
	for i, rd := range sse {
		if ev, err := rd.next(); err != nil || !strings.Contains(ev.data, `"args":[2]`) {
			t.Fatalf("stream %d after a sweep: %+v %v", i, ev, err)
		}
	}
}

// TestWebhookQueueBoundedInBytes: a webhook whose target accepts and
// never answers keeps its queue full for hours (each event takes
// Timeout × (Retries+1) plus backoff); bounded in events only, the queue
// held whatever size those events had: 600 publications of 900 KB over
// the bridge took the binary from 23 MB to 762 MB of RSS, held, and 1024
// WebSocket publications of 16 MiB would hold 16 GiB. With the default
// QueueBytes (16 MiB) the excess is dropped and counted.
func TestWebhookQueueBoundedInBytes(t *testing.T) {
	tgt := newWebhookTarget(t, "")
	tgt.hang.Store(true)
	e := newEnv(t, func(o *Options) {
		o.Webhooks = []Webhook{{Name: "hole", Realm: "realm1", Topic: "com.hole", URL: tgt.srv.URL}}
	})
	pub := e.dial("realm1", proto.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitFor(t, "the webhook's subscription", func() bool {
		res, err := pub.Call(ctx, "wamp.subscription.match", []any{"com.hole"}, nil, nil)
		return err == nil && len(res.Args) > 0 && res.Args[0] != nil
	})
	const n, size = 48, 512 << 10 // 24 MiB
	payload := strings.Repeat("w", size)
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, "com.hole", []any{payload}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	wm := webhookMetricsOf(e, "hole")
	waitFor(t, "the target's first attempt", func() bool { return tgt.hanging.Load() == 1 })
	time.Sleep(100 * time.Millisecond) // deliveries to the webhook's session settle
	held := int64(wm.queue()) * size
	t.Logf("%d events of %d KiB to a hanging target: %d queued (%.1f MiB), %d dropped", n, size>>10, wm.queue(), float64(held)/(1<<20), dropped(wm, "queue_full"))
	if held > 16<<20 {
		t.Fatalf("the webhook's queue holds %d events of %d KiB (%.1f MiB), past the default 16 MiB", wm.queue(), size>>10, float64(held)/(1<<20))
	}
	if dropped(wm, "queue_full") == 0 {
		t.Fatal("no event dropped as queue_full")
	}
}
