package route

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// publishBytes encodes n PUBLISHes of c to topic(i) with args, for
// feeding to c's shard at once (publishAll).
func (c *tc) publishBytes(n int, topic func(i int) string, args []any) [][]byte {
	c.t.Helper()
	msgs := make([][]byte, n)
	for i := range msgs {
		m := &proto.Message{Type: proto.CodePublish, Request: c.nextReq(), Dict: c.opts(nil), URI: []byte(topic(i))}
		if args != nil {
			m.Args = raw(c.t, c.peer.ser, args)
		}
		b, err := c.enc.Append(nil, c.peer.ser, m)
		if err != nil {
			c.t.Fatal(err)
		}
		msgs[i] = b
	}
	return msgs
}

// publishAll has c's shard take msgs in one turn, and waits for it.
func (c *tc) publishAll(msgs [][]byte) {
	c.exec.do(func() {
		for _, b := range msgs {
			c.sh.Receive(c.sess, b)
		}
	})
}

// heapLive returns the bytes of the heap's live objects after two
// collections (HeapAlloc: by object, where HeapInuse counts whole spans).
func heapLive() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// backlogHeldCounted publishes msgs from pub (its shard running, shard
// 1 stalled) and returns the heap they leave held and what shard 1's
// event backlog counts for them.
func backlogHeldCounted(e *env, pub *tc, msgs [][]byte) (held, counted int64) {
	sh := e.r.Shard(1)
	h0, c0 := heapLive(), sh.eventBacklog.Load()
	pub.publishAll(msgs)
	held, counted = heapLive()-h0, sh.eventBacklog.Load()-c0
	runtime.KeepAlive(msgs) // copied from: not what the events hold
	return held, counted
}

// waitBacklogEmpty waits for shard i's event backlog to count nothing.
func waitBacklogEmpty(t *testing.T, e *env, i int) {
	t.Helper()
	sh := e.r.Shard(i)
	for deadline := time.Now().Add(20 * time.Second); sh.eventBacklog.Load() != 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	e.sync()
	if b := sh.eventBacklog.Load(); b != 0 {
		t.Fatalf("%d bytes still counted after the shard ran", b)
	}
}

// Events from a publisher on another shard of the node, waiting for a
// shard that does not keep up, count in its bound (maxEventBacklog) what
// they hold there: the owned copy of the publication (88 bytes), its
// carry (304), its topic and payload, and the task in the shard's mailbox
// (104, in a slice grown as it fills), not the payload and topic and 256
// bytes. A small event held about 580 bytes and counted 261, so the
// "32 MiB" bound let a stalled loop hold ~70 MiB of them.
func TestShardEventBacklogCountsWhatEventsHold(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		args []any
	}{
		{"empty", 20000, nil},
		{"small", 20000, []any{"x"}},
		{"1 KiB", 5000, []any{strings.Repeat("x", 1000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 2, nil)
			sub := e.joinOn(1, proto.JSON)
			sub.subscribe("com.t", nil)
			sub.peer.slow.Store(true) // dropped at the subscriber: only the backlog's count matters here
			pub := e.joinOn(0, proto.JSON)
			unblock := stallExec(t, e, 1)
			msgs := pub.publishBytes(tc.n, func(int) string { return "com.t" }, tc.args)
			held, counted := backlogHeldCounted(e, pub, msgs)
			t.Logf("%d %s events: %d KiB held, %d KiB counted (%d and %d bytes each)", tc.n, tc.name, held>>10, counted>>10, held/int64(tc.n), counted/int64(tc.n))
			if counted < held*3/4 || counted > held*3/2 {
				t.Errorf("%d %s events hold %d KiB waiting for the shard, counted %d KiB: want within 3/4 and 3/2 of it", tc.n, tc.name, held>>10, counted>>10)
			}
			if n := e.r.Stats().EventsDroppedShardBacklog; n != 0 {
				t.Fatalf("%d events dropped below the bound", n)
			}
			unblock()
			waitBacklogEmpty(t, e, 1)
		})
	}
}

// An event for another shard whose topic the publisher's shard had not
// looked up lately holds the list of subscriptions matched for it
// (matchAll on a miss of the shard's cache), 8 bytes a subscription, for
// as long as it waits: the cache, cleared past l1Max topics, does not
// keep it. It counted nothing of it: with 256 wildcard subscriptions
// matching every topic a.b.c.d.e.f.g.h.<n>, 1,280 small events to
// distinct topics held ~2.9 KiB each and counted ~0.5 (with 512 and
// a.b.c.d.e.f.g.h.i.<n>, 5.3 KiB and 0.5).
func TestShardEventBacklogCountsMatchedSubscriptions(t *testing.T) {
	e := newEnv(t, 2, nil)
	sub := e.joinOn(1, proto.JSON)
	comps := strings.Split("a.b.c.d.e.f.g.h", ".")
	n := 0
	for mask := 0; mask < 1<<len(comps); mask++ { // every pattern of the first 8 components, the 9th any
		pat := make([]string, len(comps)+1)
		for i, c := range comps {
			if mask&(1<<i) == 0 {
				pat[i] = c
			}
		}
		sub.subscribe(strings.Join(pat, "."), map[string]any{"match": "wildcard"})
		n++
	}
	sub.peer.slow.Store(true) // dropped at the subscriber: only the backlog's count matters here
	pub := e.joinOn(0, proto.JSON)
	unblock := stallExec(t, e, 1)

	const events = l1Max + 256 // past the cache: it is cleared, and the events alone hold the lists of the first 1,024
	msgs := pub.publishBytes(events, func(i int) string { return "a.b.c.d.e.f.g.h.n" + strconv.Itoa(i) }, []any{"x"})
	held, counted := backlogHeldCounted(e, pub, msgs)
	t.Logf("%d events to distinct topics matching %d subscriptions: %d KiB held, %d KiB counted (%d and %d bytes each)", events, n, held>>10, counted>>10, held/events, counted/events)
	if counted < held*3/4 || counted > held*3/2 {
		t.Errorf("%d events matching %d subscriptions hold %d KiB waiting for the shard, counted %d KiB: want within 3/4 and 3/2 of it", events, n, held>>10, counted>>10)
	}

	// To one topic: the list is the cache's, shared, counted once.
	const same = 512
	msgs = pub.publishBytes(same, func(int) string { return "a.b.c.d.e.f.g.h.same" }, []any{"x"})
	held, counted = backlogHeldCounted(e, pub, msgs)
	t.Logf("%d events to one topic matching %d subscriptions: %d KiB held, %d KiB counted (%d and %d bytes each)", same, n, held>>10, counted>>10, held/same, counted/same)
	if counted < held*3/4 || counted > held*3/2 {
		t.Errorf("%d events to one topic matching %d subscriptions hold %d KiB waiting for the shard, counted %d KiB: want within 3/4 and 3/2 of it", same, n, held>>10, counted>>10)
	}
	if d := e.r.Stats().EventsDroppedShardBacklog; d != 0 {
		t.Fatalf("%d events dropped below the bound", d)
	}
	unblock()
	waitBacklogEmpty(t, e, 1)
}

// encodeAll encodes msgs in c's serializer.
func (c *tc) encodeAll(msgs []*proto.Message) [][]byte {
	c.t.Helper()
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		b, err := c.enc.Append(nil, c.peer.ser, m)
		if err != nil {
			c.t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// YIELDs from a callee on another shard of the node, waiting for the
// caller's shard, count in its backlog of calls (maxCallBacklog) what
// they hold there: their payload's copy, its carry (304 bytes, a 320-byte
// object) and the task in the shard's mailbox (104), not the payload and
// 256 bytes. A small result held about 440 bytes and counted 261.
func TestShardCallBacklogCountsWhatResultsHold(t *testing.T) {
	const n = 4000 // below the test peer's inbox of 4,096 INVOCATIONs
	e := newEnv(t, 2, func(c *Config) { c.MaxPendingCalls = n })
	callee := e.joinOn(1, proto.JSON)
	callee.register("com.p", nil)
	caller := e.joinOn(0, proto.JSON)
	calls := make([]*proto.Message, n)
	for i := range calls {
		calls[i] = &proto.Message{Type: proto.CodeCall, Request: caller.nextReq(), Dict: caller.opts(nil), URI: []byte("com.p"), Args: raw(t, proto.JSON, []any{i})}
	}
	caller.publishAll(caller.encodeAll(calls))
	yields := make([]*proto.Message, n)
	for i := range yields {
		inv := callee.expect(proto.CodeInvocation)
		yields[i] = &proto.Message{Type: proto.CodeYield, Request: inv.Request, Dict: callee.opts(nil), Args: raw(t, proto.JSON, []any{"x"})}
	}
	msgs := callee.encodeAll(yields)
	unblock := stallExec(t, e, 0)
	sh := e.r.Shard(0)
	h0, c0 := heapLive(), sh.callBacklog.Load()
	callee.publishAll(msgs)
	held, counted := heapLive()-h0, sh.callBacklog.Load()-c0
	runtime.KeepAlive(msgs)
	t.Logf("%d results: %d KiB held, %d KiB counted (%d and %d bytes each)", n, held>>10, counted>>10, held/n, counted/n)
	if counted < held*3/4 || counted > held*3/2 {
		t.Errorf("%d results from another shard hold %d KiB waiting for the caller's shard, counted %d KiB: want within 3/4 and 3/2 of it", n, held>>10, counted>>10)
	}
	if b := sh.stats.CallsBacklog.Load(); b != 0 {
		t.Fatalf("%d results refused below the bound", b)
	}
	unblock()
	for i := 0; i < n; i++ {
		caller.expect(proto.CodeResult)
	}
	waitZero(t, "the caller's shard's backlog of calls", sh.callBacklog.Load)
}

// mailboxCaps returns the capacities of shard i's mailbox and spare
// batch, read on its goroutine.
func mailboxCaps(e *env, i int) (mb, spare int) {
	sh := e.r.Shard(i)
	e.execs[i].do(func() {
		sh.mbMu.Lock()
		mb = cap(sh.mb)
		sh.mbMu.Unlock()
		spare = cap(sh.spare)
	})
	return mb, spare
}

// A shard's mailbox does not keep the arrays of its largest backlog once
// it has drained it: its two task slices (the one filling, the drained
// batch kept for reuse) took the capacity of the largest backlog, 104
// bytes a task, and kept it for the life of the process, counted
// nowhere: 60,000 events queued for a stalled loop left 6.8 MiB held
// after they were delivered (a 68,529-task array), the 20,000 here 2.2
// MiB.
func TestShardMailboxShrinksAfterBacklog(t *testing.T) {
	e := newEnv(t, 2, nil)
	sub := e.joinOn(1, proto.JSON)
	sub.subscribe("com.t", nil)
	sub.peer.slow.Store(true) // dropped at the subscriber: only the mailbox matters here
	pub := e.joinOn(0, proto.JSON)
	msgs := pub.publishBytes(20000, func(int) string { return "com.t" }, nil)
	h0 := heapLive()
	unblock := stallExec(t, e, 1)
	pub.publishAll(msgs)
	unblock()
	waitBacklogEmpty(t, e, 1)
	// A few turns of a few tasks each, as a quiet loop gets.
	for range 4 {
		pub.publishAll(msgs[:1])
		waitBacklogEmpty(t, e, 1)
	}
	mb, spare := mailboxCaps(e, 1)
	held := heapLive() - h0
	runtime.KeepAlive(msgs)
	t.Logf("after 20,000 queued events were delivered: mailbox %d and spare %d tasks of capacity, %d KiB still held", mb, spare, held>>10)
	if mb > maxKeptTasks || spare > maxKeptTasks {
		t.Errorf("after 20,000 queued events were delivered the mailbox keeps %d and %d tasks of capacity (%d KiB), want at most %d each", mb, spare, (mb+spare)*104>>10, maxKeptTasks)
	}
}
