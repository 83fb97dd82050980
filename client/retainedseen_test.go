package client

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// What a pattern subscription with GetRetained remembers of the topics its
// handler was given events of (to drop a retained event it had already)
// does not grow with the topics' length: one publisher allowed under the
// prefix, sending events to thousands of distinct topics of 4,000 bytes
// (URIs go up to 4 KiB), had the subscriber's Client keep every topic name,
// up to 65,536 of them (about 270 MB), for as long as the subscription.
// (Acknowledged, so that none is dropped for a subscriber slowed by -race:
// limits.high_water.)
func TestClientRetainedSeenTopicsHeldSmall(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	other := dialRouter(t, url)
	cl, err := Connect(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack}, ReconnectConfig{})
	noErr(t, "Connect", err)
	defer cl.Close()
	const n = 4096
	got := make(chan struct{}, n)
	noErr(t, "Subscribe", cl.Subscribe(ctx, "com.", func(*Event) { got <- struct{}{} }, &SubscribeOptions{Match: "prefix", GetRetained: true}))
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap()
	long := strings.Repeat("x", 4000)
	for i := range n {
		noErr(t, "Publish", other.Publish(ctx, fmt.Sprintf("com.%s.%d", long, i), nil, nil, &PublishOptions{Acknowledge: true}))
	}
	deadline := time.After(20 * time.Second)
	for i := range n {
		select {
		case <-got:
		case <-deadline:
			t.Fatalf("%d events of %d came", i, n)
		}
	}
	held := int64(heap()) - int64(base)
	runtime.KeepAlive(cl)
	t.Logf("heap after %d events on distinct 4 KB topics: %+d bytes", n, held)
	if held > 4<<20 {
		t.Fatalf("the subscriber holds %d MB more after %d events on distinct 4 KB topics (%d MB of topic names): want under 4 MB", held>>20, n, n*4000>>20)
	}
}
