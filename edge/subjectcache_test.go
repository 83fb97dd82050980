package edge

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// held returns the entries c holds, and the bytes of their topics and
// subjects.
func (c *subjectCache) held() (entries, bytes int) {
	for i := range c.slots {
		if e := c.slots[i].Load(); e != nil {
			entries++
			bytes += len(e.topic) + len(e.subj)
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

// A client cycling through topics does not make other publishers rebuild
// their subjects: the cache was cleared whole at its 4,096th entry, and
// every publisher's next event built its subject again (an allocation
// and a copy, under a mutex every loop shares). A topic published to
// between two of the cycler's stays cached.
func TestSubjectCacheKeepsHotTopicsPastCycling(t *testing.T) {
	var c subjectCache
	root := eventRoot(2)
	hot := c.get(root, "realm1", []byte("com.example.hot"))
	c.get(root, "realm1", []byte("com.example.hot"))
	for i := 0; i < 20000; i++ {
		c.get(root, "realm1", []byte(fmt.Sprintf("com.cycle.%d", i)))
		if s := c.get(root, "realm1", []byte("com.example.hot")); unsafe.StringData(s) != unsafe.StringData(hot) {
			t.Fatalf("the hot topic's subject was built again after %d other topics", i+1)
		}
	}
	// Another realm's topic of the same name is its own.
	if s := c.get(root, "realm2", []byte("com.example.hot")); s == hot {
		t.Fatalf("realm2's subject %q is realm1's", s)
	}
}

// Loops reading and replacing entries at once each get their topic's
// own subject (run with -race).
func TestSubjectCacheConcurrent(t *testing.T) {
	var c subjectCache
	root := eventRoot(2)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				topic := []byte(fmt.Sprintf("com.t.%d", (i*(g+1))%5000))
				want := string(eventSubject(nil, root, "realm1", topic))
				if s := c.get(root, "realm1", topic); s != want {
					t.Errorf("%s: got %q, want %q", topic, s, want)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}
