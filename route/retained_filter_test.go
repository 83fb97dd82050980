package route

import (
	"reflect"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A retained event keeps its PUBLISH black/white lists (they still apply
// to later subscribers), so they count against MaxRetainedBytes like its
// payload. Before, only the topic and payload were counted: an anonymous
// publisher retaining events with an empty payload and a large
// exclude_authid list made the router hold ~56 bytes per distinct entry
// per topic outside the budget (20 events of 1M entries each, 5 MiB
// PUBLISHes, took a loops:1 router from 21 MB to 1.5 GB of RSS while
// retainedBytes read 6 KB).
func TestRetainedFilterCountsInBudget(t *testing.T) {
	const budget = 1 << 20
	e := newEnv(t, 1, func(c *Config) { c.MaxRetainedBytes = budget })
	pub := e.join(proto.MsgPack)
	ids := make([]any, 20000)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const topics = 40
	for i := range topics {
		pub.publish("com.state.t"+strconv.Itoa(i), map[string]any{"retain": true, "exclude_authid": ids}, nil, nil)
		e.sync()
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	rm := e.r.Realm("realm1")
	rm.mu.RLock()
	n, bytes := len(rm.retained), rm.retainedBytes
	var filters int64
	for _, re := range rm.retained {
		if f := re.pub.filter; f != nil {
			filters += f.size()
		}
	}
	rm.mu.RUnlock()
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d topics retained, %d bytes accounted, filters %d bytes, heap grew %d bytes", n, bytes, filters, grown)
	if bytes > budget || filters > budget {
		t.Fatalf("retained %d topics accounted as %d bytes, but their black/white lists alone hold %d bytes (budget %d)", n, bytes, filters, budget)
	}
	if grown > 4*budget {
		t.Fatalf("heap grew %d bytes holding %d retained events with a %d-byte budget", grown, n, budget)
	}
	var refused uint64
	e.execs[0].do(func() {
		st := &e.r.Shard(0).stats
		refused = st.RetainRefused.Load() + st.RetainRefusedPublisher.Load()
	})
	if refused == 0 {
		t.Fatalf("no retained event refused")
	}
	// A retained event whose lists fit is kept and still filters.
	pub.publish("com.state.small", map[string]any{"retain": true, "exclude_authid": []any{"nobody"}}, []any{1}, nil)
	e.sync()
	late := e.join(proto.JSON)
	late.subscribe("com.state.small", map[string]any{"get_retained": true})
	if ev := late.expect(proto.CodeEvent); argsOf(ev)[0] != 1.0 && argsOf(ev)[0] != int64(1) && argsOf(ev)[0] != uint64(1) {
		t.Fatalf("retained %s", describe(ev))
	}
}

// WAMP Advanced Profile, Event Retention: "the Broker MUST send the
// Subscriber the most recent Retained Event that they would have received
// if they were subscribing when it was published" ("limited to one event
// that all subscribers would receive, and MAY include other supplemental
// events that have limited distribution (for example, a event published
// with subscriber black/whitelisting)"). A retained PUBLISH with an
// eligible list replaced the topic's retained event for everyone: a
// subscriber outside the list got no retained event at all, though it
// would have received the earlier, unrestricted one (found by review).
// The topic now keeps its last unrestricted event and up to
// maxRetainedFiltered newer ones with lists (retainedEvent.older), all
// counted in the retained bytes; get_retained sends each subscriber the
// newest it would have received; an unrestricted event replaces them all.
func TestRetainedWhitelistKeepsLastValue(t *testing.T) {
	e := newEnv(t, 2, nil)
	pub := e.join(proto.JSON)
	x := e.join(proto.JSON)
	pub.publish("com.sensor.temp", map[string]any{"retain": true, "acknowledge": true}, []any{20}, nil)
	pub.expect(proto.CodePublished)
	// A supplemental event for x only.
	pub.publish("com.sensor.temp", map[string]any{"retain": true, "acknowledge": true, "eligible": []any{x.id}}, []any{"for x only"}, nil)
	pub.expect(proto.CodePublished)
	x.quiet()
	e.sync()

	// retainedFor subscribes c to the topic with get_retained and returns
	// the arguments of the retained event it gets (nil: none).
	retainedFor := func(c *tc, match string) []any {
		t.Helper()
		uri, opts := "com.sensor.temp", map[string]any{"get_retained": true}
		if match != "" {
			uri, opts["match"] = "com.sensor.", match
		}
		sid := c.subscribe(uri, opts)
		e.sync()
		var got []any
		select {
		case ev := <-c.peer.in:
			if ev.Type != proto.CodeEvent || !ev.Opt.Bool(proto.KeyRetained, false) {
				t.Fatalf("got %v %s, want a retained EVENT", ev.Type, describe(ev))
			}
			got = argsOf(ev)
		case <-time.After(100 * time.Millisecond):
		}
		c.quiet()
		c.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: c.nextReq(), ID: sid})
		c.expect(proto.CodeUnsubscribed)
		return got
	}
	y := e.join(proto.MsgPack)
	for _, match := range []string{"", "prefix"} {
		if got := retainedFor(y, match); !reflect.DeepEqual(got, []any{int64(20)}) {
			t.Fatalf("a get_retained subscriber (match %q) outside the eligible list of the latest retained PUBLISH got %v; want [20], the most recent retained event it would have received", match, got)
		}
		if got := retainedFor(x, match); !reflect.DeepEqual(got, []any{"for x only"}) {
			t.Fatalf("the eligible subscriber (match %q) got %v, want the newer event for it", match, got)
		}
	}

	// More events with lists than the topic keeps: the oldest of them
	// go, the unrestricted one stays; all are counted.
	rm := e.r.Realm("realm1")
	chain := func() (n int, bytes, counted int64) {
		rm.mu.RLock()
		defer rm.mu.RUnlock()
		for re := rm.retained["com.sensor.temp"]; re != nil; re = re.older {
			n++
			bytes += re.size
		}
		return n, bytes, rm.retainedBytes
	}
	for i := range maxRetainedFiltered + 2 {
		pub.publish("com.sensor.temp", map[string]any{"retain": true, "acknowledge": true, "exclude": []any{y.id}}, []any{"not for y", i}, nil)
		pub.expect(proto.CodePublished)
	}
	x.quiet()
	if n, bytes, counted := chain(); n != maxRetainedFiltered+1 || bytes != counted {
		t.Fatalf("the topic keeps %d events of %d bytes, %d counted: want %d, all counted", n, bytes, counted, maxRetainedFiltered+1)
	}
	if got := retainedFor(y, ""); !reflect.DeepEqual(got, []any{int64(20)}) {
		t.Fatalf("y got %v, want [20]", got)
	}
	if got := retainedFor(x, ""); !reflect.DeepEqual(got, []any{"not for y", int64(maxRetainedFiltered + 1)}) {
		t.Fatalf("x got %v, want the newest", got)
	}
	// An unrestricted event replaces them all.
	pub.publish("com.sensor.temp", map[string]any{"retain": true, "acknowledge": true}, []any{21}, nil)
	pub.expect(proto.CodePublished)
	x.quiet()
	if n, bytes, counted := chain(); n != 1 || bytes != counted {
		t.Fatalf("the topic keeps %d events of %d bytes, %d counted: want 1", n, bytes, counted)
	}
	if got := retainedFor(x, ""); !reflect.DeepEqual(got, []any{int64(21)}) {
		t.Fatalf("x got %v, want [21]", got)
	}
	// A revoked publisher's events go, each (dropRetained walks every
	// event a topic keeps).
	pub.publish("com.sensor.temp", map[string]any{"retain": true, "acknowledge": true, "eligible": []any{x.id}}, []any{"for x only"}, nil)
	pub.expect(proto.CodePublished)
	x.quiet()
	n, _, _, _ := rm.dropRetained(func(_ string, re *retainedEvent) string {
		if re.pub.filter != nil {
			return "test"
		}
		return ""
	})
	if got := retainedFor(x, ""); n != 1 || !reflect.DeepEqual(got, []any{int64(21)}) {
		t.Fatalf("%d dropped; x got %v, want [21]", n, got)
	}
	if n, bytes, counted := chain(); n != 1 || bytes != counted {
		t.Fatalf("the topic keeps %d events of %d bytes, %d counted: want 1", n, bytes, counted)
	}
}
