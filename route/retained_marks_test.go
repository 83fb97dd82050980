package route

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A get_retained SUBSCRIBE that makes the session a subscriber keeps a
// mark for each retained event it delivers (retwin.go), so that the live
// copy of that event and its publisher's older events on their way are
// not delivered after it; README says they are remembered 5 s, 4,096 per
// session. They were kept under a copy of the topic, up to 4 KiB each,
// and until a live event of the subscription or another get_retained
// SUBSCRIBE of the session came after those 5 s: a session whose prefix
// subscription matched 4,096 retained events on long topics held 4,096
// copies of them for as long as it stayed quiet, and every session of an
// address as much again (8 sessions, 2 KB topics: 70.5 MB held). The marks
// now share the realm's topic strings (3.4 MB for the 8), and a timer
// drops them once their 5 s are past.
func TestRetainedMarksShareTopicsAndExpire(t *testing.T) {
	// 4,096 events on 2 KB topics count 18 MiB (a topic twice, as held),
	// past the publisher's default quarter of retained_bytes.
	e := newEnv(t, 1, func(c *Config) { c.MaxRetainedBytesPerPublisher = 32 << 20 })
	pub := e.join(proto.MsgPack)
	const topics = 4096
	pad := strings.Repeat("p", 2000)
	for i := 0; i < topics; i++ {
		pub.sendAsync(&proto.Message{Type: proto.CodePublish, Request: pub.nextReq(), Dict: pub.opts(map[string]any{"retain": true}),
			URI: []byte(fmt.Sprintf("com.marks.%s.%d", pad, i)), Args: raw(t, proto.MsgPack, []any{i})})
	}
	e.sync()
	rm := e.r.Realm("realm1")
	rm.mu.RLock()
	kept := len(rm.retained)
	rm.mu.RUnlock()
	if kept != topics {
		t.Fatalf("%d retained topics, want %d", kept, topics)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const sessions = 8
	var subs []*tc
	for i := 0; i < sessions; i++ {
		c := e.join(proto.MsgPack)
		c.peer.slow.Store(true) // does not read: its events are dropped, its marks kept
		c.subscribe("com.marks.", map[string]any{"match": "prefix", "get_retained": true})
		subs = append(subs, c)
	}
	e.sync()
	held := int64(heap()) - int64(before)
	marks := 0
	for _, c := range subs {
		_, _, m, _ := winsOf(c, "")
		marks += m
	}
	t.Logf("%d sessions with a prefix get_retained subscription over %d retained topics of %d bytes: %d marks, %d bytes of heap held", sessions, topics, len(pad)+16, marks, held)
	if marks != sessions*topics {
		t.Fatalf("%d marks, want %d", marks, sessions*topics)
	}
	if per := held / (sessions * topics); per > 512 {
		t.Fatalf("%d bytes held per mark (%d in all), want them to share the realm's topics", per, held)
	}
	// Remembered 5 s, as README says, whether anything else happens or not.
	e.advance(6 * time.Second)
	for _, c := range subs {
		if _, wins, m, _ := winsOf(c, ""); wins != 0 || m != 0 {
			t.Fatalf("6 s after its retained events, a quiet session keeps %d windows and %d marks, want none", wins, m)
		}
	}
}
