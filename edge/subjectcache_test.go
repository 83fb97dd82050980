package edge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// held returns the bytes of the topics and subjects c holds.
func (c *subjectCache) held() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.m {
		for topic, subj := range m {
			entries++
			bytes += len(topic) + len(subj)
		}
	}
	return entries, bytes
}

// The cache of the event subjects a node publishes to is bounded in
// bytes, not only in entries: one client publishing once to each of 4,095
// topics near proto.MaxURILen (16 MiB sent, to topics nobody subscribes
// to) made the node hold 43.5 MB of topics and subjects in it (57 MiB of
// heap), counted in no budget, until 4,096 other topics cleared it.
func TestSubjectCacheBoundedInBytes(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	a := nodes[0]
	ctx := ctxT(t, 30*time.Second)
	pub := a.dial(a.rs(), proto.JSON)
	// '$' is escaped: the subject is 8/5 of the topic.
	pad := strings.Repeat("$", proto.MaxURILen-len("com.000000."))
	const n = 1000
	for i := 0; i < n; i++ {
		topic := fmt.Sprintf("com.%06d.%s", i, pad)
		if err := pub.Publish(ctx, topic, nil, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	entries, bytes := a.n.subjects.held()
	if limit := subjectCacheBytes + 16<<10; bytes > limit {
		t.Fatalf("the subject cache holds %d entries, %d bytes of topics and subjects after %d long topics; want at most %d", entries, bytes, n, limit)
	}
	// Short topics are still cached.
	for i := 0; i < 100; i++ {
		if err := pub.Publish(ctx, fmt.Sprintf("com.short.%d", i), nil, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := a.n.subjects.held(); entries < 100 {
		t.Fatalf("%d entries cached after 100 short topics", entries)
	}
}
