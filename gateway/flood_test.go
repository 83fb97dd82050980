package gateway

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
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
