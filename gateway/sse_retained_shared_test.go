package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Two event streams of one principal on one topic share the gateway's
// WAMP session and subscription. The first stream is open; a second one
// opens with retained=true while events published before its SUBSCRIBE
// are still on their way to the session's loop (handed over by the
// publisher's loop). Before, the router's get_retained window for the
// session then dropped those events as "superseded" by the retained copy,
// which the gateway gives to the second stream only: the first stream,
// open all along, never got v1 nor v2. The session being a subscriber
// already, its SUBSCRIBE now opens no window.
func TestSecondRetainedStreamDropsFirstStreamsEvents(t *testing.T) {
	t.Setenv("EDGEWAMP_TEST_GATEWAY_LANE", "off") // a blocked loop must not hold the HTTP requests
	e := newEnv(t, func(o *Options) { o.Limits.SessionsPerIdentity = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	_, s1 := e.stream(ctx, "GET", "/wamp/realm1/events/com.state", "")
	warm := e.dial("realm1", proto.JSON)
	if err := warm.Publish(ctx, "com.state", []any{"v0"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	if ev, err := s1.next(); err != nil || !strings.Contains(ev.data, `"v0"`) {
		t.Fatalf("first stream: %+v %v", ev, err)
	}

	// The principal's one session, and its loop.
	var q *shardQ
	e.gw.pool.mu.Lock()
	for _, ip := range e.gw.pool.ids {
		for _, sl := range ip.slots {
			if sl != nil && sl.s != nil {
				q = sl.s.q
			}
		}
	}
	e.gw.pool.mu.Unlock()
	if q == nil {
		t.Fatal("no gateway session")
	}
	k := q.shard.Index()

	release := make(chan struct{})
	released := false
	unblock := func() {
		if !released {
			released = true
			close(release)
		}
	}
	defer unblock()
	stalled := make(chan struct{})
	if err := e.r.Shard(k).Do(func() { close(stalled); <-release }); err != nil {
		t.Fatal(err)
	}
	<-stalled

	// A publisher on the other loop (a dial that lands on the blocked one
	// times out: try again).
	var pub *client.Session
	for i := 0; i < 8 && pub == nil; i++ {
		dctx, dcancel := context.WithTimeout(ctx, time.Second)
		s, err := client.Dial(dctx, client.Config{URL: e.wamp, Realm: "realm1", Serializer: proto.JSON})
		dcancel()
		if err == nil {
			pub = s
			t.Cleanup(func() { s.Close() })
		}
	}
	if pub == nil {
		t.Fatal("no publisher on the other loop")
	}

	// The second stream's SUBSCRIBE (get_retained) is queued for the
	// blocked loop first, then v1 and v2 are published.
	type res struct {
		resp *http.Response
		err  error
	}
	second := make(chan res, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/wamp/realm1/events/com.state?retained=true", nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := (&http.Client{}).Do(req)
		second <- res{resp, err}
	}()
	waitFor(t, "the second stream's SUBSCRIBE queued", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.jobs) > 0
	})
	for _, v := range []string{"v1", "v2"} {
		if err := pub.Publish(ctx, "com.state", []any{v}, nil, &client.PublishOptions{Acknowledge: true, Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	unblock()
	r2 := <-second
	if r2.err != nil {
		t.Fatal(r2.err)
	}
	defer r2.resp.Body.Close()
	s2 := newSSEReader(r2.resp.Body)
	if ev, err := s2.next(); err != nil || !strings.Contains(ev.data, `"v2"`) || !strings.Contains(ev.data, `"retained":true`) {
		t.Fatalf("second stream: %+v %v, want the retained v2", ev, err)
	}
	if err := pub.Publish(ctx, "com.state", []any{"v3"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		ev, err := s1.next()
		if err != nil {
			t.Fatalf("first stream ended: %v (got %q)", err, got)
		}
		got = append(got, ev.data)
		if strings.Contains(ev.data, `"v3"`) {
			break
		}
	}
	all := strings.Join(got, "\n")
	if !strings.Contains(all, `"v1"`) || !strings.Contains(all, `"v2"`) {
		t.Fatalf("the first stream, open all along, got %d events before v3: %q; want v1 and v2 (superseded on the router: %d)",
			len(got)-1, got, e.r.Stats().EventsSuperseded)
	}
}

// A get_retained event stream shares its
// principal's pooled session and WAMP subscription with the streams
// already open on the topic. Before, the router fenced that subscription
// for the session (route/retwin.go): a live event whose publication it
// had just delivered as retained (or that its publisher published before
// it) was not delivered again. The gateway hands the retained copy to the
// newcomer only (subEntry.awaiting) and the live one to every sink, so a
// stream that was already open lost that event: it got neither copy. Now
// the SUBSCRIBE of a session subscribed already opens no window.
//
// Made deterministic by stalling the session's shard: the newcomer's
// SUBSCRIBE is queued, then a retained event is published from another
// shard (its store update is at once; its live delivery a task queued
// behind the SUBSCRIBE), then the shard runs.
func TestSSERetainedNewcomerFencesOtherStream(t *testing.T) {
	t.Setenv("EDGEWAMP_TEST_GATEWAY_LANE", "off") // the stall below stops an event loop
	e := newEnv(t, func(o *Options) { o.Limits.SessionsPerIdentity = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The stream already open: anonymous, on the principal's one session.
	resp, old := e.stream(ctx, "GET", "/wamp/realm1/events/com.state", "")
	if resp.StatusCode != 200 {
		t.Fatalf("first stream: %s", resp.Status)
	}
	e.gw.pool.mu.Lock()
	var q int = -1
	for id, ip := range e.gw.pool.ids {
		if id.realm == "realm1" && ip.slots[0] != nil && ip.slots[0].s != nil {
			q = ip.slots[0].s.q.shard.Index()
		}
	}
	e.gw.pool.mu.Unlock()
	if q < 0 {
		t.Fatal("no pooled session")
	}
	other := 1 - q
	// A publisher on the other shard (a pinned in-process session).
	ps, p := e.gw.pool.openPinned(identity{realm: "realm1", authid: "pub", authrole: "anonymous", method: "static"}, other, nil, nil, nil)
	if p != nil {
		t.Fatalf("publisher: %+v", p)
	}
	publish := func(v string) uint64 {
		r := e.gw.runSync(ps, func() *syncReply {
			return ps.publish(&pubReq{uri: "com.state", args: []byte(`["` + v + `"]`), retain: true})
		})
		if r.typ == proto.CodeError {
			t.Fatalf("publish %s: %s %s", v, r.err, r.detail)
		}
		return r.id
	}
	v0 := publish("v0")
	if ev := nextEvent(t, old, "", "the open stream, v0"); ev.id != fmt.Sprint(v0) {
		t.Fatalf("the open stream got %s, want v0", ev.data)
	}

	release := make(chan struct{})
	stalled := make(chan struct{})
	if err := e.r.Shard(q).Do(func() { close(stalled); <-release }); err != nil {
		t.Fatal(err)
	}
	<-stalled
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	// The newcomer: its SUBSCRIBE (get_retained) queues behind the stall.
	type opened struct {
		rd  *sseReader
		err error
	}
	newc := make(chan opened, 1)
	go func() {
		req, _ := newRequest(ctx, "GET", e.base+"/wamp/realm1/events/com.state?retained=true", "")
		req.Header.Set("Accept", "text/event-stream")
		resp, err := e.hc.Do(req)
		if err != nil {
			newc <- opened{err: err}
			return
		}
		t.Cleanup(func() { resp.Body.Close() })
		newc <- opened{rd: newSSEReader(resp.Body)}
	}()
	waitFor(t, "the newcomer's SUBSCRIBE queued", func() bool { return e.gw.streams.Load() == 2 })
	time.Sleep(300 * time.Millisecond) // from openStream to its runSync post
	v1 := publish("v1")                // retained at once; its live delivery queues behind the SUBSCRIBE
	close(release)
	o := <-newc
	if o.err != nil {
		t.Fatal(o.err)
	}
	if ev := nextEvent(t, o.rd, "", "the newcomer"); ev.id != fmt.Sprint(v1) {
		t.Fatalf("the newcomer got %s, want the retained v1", ev.data)
	}
	v2 := publish("v2")
	ev := nextEvent(t, old, "", "the open stream after v0")
	if ev.id != fmt.Sprint(v1) {
		t.Fatalf("the stream open all along got %s next (publication %s), want v1 (%d): v1 (v2 is %d) was lost to it because another stream of its principal subscribed with retained=true",
			ev.data, ev.id, v1, v2)
	}
}
