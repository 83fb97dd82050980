package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestBridgeCall: POST /wamp/{realm}/call/{procedure} reaches a real WAMP
// callee (MsgPack, so the router transcodes) and returns its result; the
// callee's errors come back as problem documents with the table's status.
func TestBridgeCall(t *testing.T) {
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.MsgPack)
	e.register(callee, "com.add", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{inv.Args[0].(int64) + inv.Args[1].(int64)}, Kwargs: map[string]any{"by": inv.CallerAuthRole}}, nil
	})
	e.register(callee, "com.echo", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args, Kwargs: inv.Kwargs}, nil
	})
	e.register(callee, "com.fail", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return nil, &client.Error{URI: "com.example.out_of_stock", Args: []any{"no more widgets"}, Kwargs: map[string]any{"sku": "w-1"}}
	})
	e.register(callee, "com.bad", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return nil, &client.Error{URI: proto.URIInvalidArgument, Args: []any{"x must be positive"}}
	})
	e.register(callee, "com.slow", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})

	resp, body := e.do("POST", "/wamp/realm1/call/com.add", `{"args":[2,3]}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("call: %d %s", resp.StatusCode, body)
	}
	var res struct {
		Args   []any          `json:"args"`
		Kwargs map[string]any `json:"kwargs"`
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res.Args) != 1 || res.Args[0] != 5.0 {
		t.Fatalf("call result %s (%v)", body, err)
	}

	// Unicode, nesting, a binary value (WAMP's JSON convention) and
	// kwargs survive JSON → MsgPack → JSON.
	in := `{"args":["zürich ☃",{"a":[1,[2,[3]]]},"\u0000AQID"],"kwargs":{"k":null,"n":-1.5}}`
	resp, body = e.do("POST", "/wamp/realm1/call/com.echo", in)
	if resp.StatusCode != 200 {
		t.Fatalf("echo: %d %s", resp.StatusCode, body)
	}
	var got, want any
	json.Unmarshal(body, &got)
	json.Unmarshal([]byte(in), &want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("echo: got %s, sent %s", body, in)
	}

	// No body at all: a call without arguments.
	resp, body = e.do("POST", "/wamp/realm1/call/com.echo", "")
	if resp.StatusCode != 200 || string(body) != `{"args":[],"kwargs":{}}` {
		t.Fatalf("empty call: %d %s", resp.StatusCode, body)
	}

	resp, body = e.do("POST", "/wamp/realm1/call/com.nothing", `{}`)
	expectProblem(t, resp, body, 404, proto.URINoSuchProcedure)

	resp, body = e.do("POST", "/wamp/realm1/call/com.fail", `{}`)
	p := expectProblem(t, resp, body, 502, "com.example.out_of_stock")
	if p.Detail != "no more widgets" || p.Kwargs["sku"] != "w-1" || len(p.Args) != 1 {
		t.Fatalf("application error problem %+v", p)
	}
	resp, body = e.do("POST", "/wamp/realm1/call/com.bad", `{}`)
	expectProblem(t, resp, body, 400, proto.URIInvalidArgument)

	start := time.Now()
	resp, body = e.do("POST", "/wamp/realm1/call/com.slow", `{"options":{"timeout":200}}`)
	expectProblem(t, resp, body, 504, proto.URITimeout)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the 200 ms call took %v", d)
	}

	resp, body = e.do("POST", "/wamp/realm1/call/bad..uri", `{}`)
	expectProblem(t, resp, body, 400, proto.URIInvalidURI)
}

// TestBridgeCallCallerGone: a client that goes away cancels its call at
// the callee.
func TestBridgeCallCallerGone(t *testing.T) {
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	invoked, interrupted := make(chan struct{}, 1), make(chan struct{}, 1)
	e.register(callee, "com.slow", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		invoked <- struct{}{}
		<-ctx.Done()
		interrupted <- struct{}{}
		return nil, ctx.Err()
	})
	// The client leaves once the callee has the call (not after a fixed
	// 300 ms, which a request slow to arrive on a loaded machine took
	// before the call was made).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-invoked:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, _ := newRequest(ctx, "POST", e.base+"/wamp/realm1/call/com.slow", `{}`)
	if _, err := e.hc.Do(req); err == nil {
		t.Fatal("the call answered")
	}
	select {
	case <-interrupted:
	case <-time.After(10 * time.Second):
		t.Fatal("the callee was not interrupted when the HTTP client left")
	}
}

// TestBridgePublishEvents: an SSE subscriber and a WAMP subscriber get a
// publication made over HTTP, and an HTTP subscriber gets a WAMP
// client's; acknowledge returns the publication id, which is the SSE id.
func TestBridgePublishEvents(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, sse := e.stream(ctx, "GET", "/wamp/realm1/events/com.news", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sub := e.dial("realm1", proto.CBOR)
	got := make(chan *client.Event, 4)
	if _, err := sub.Subscribe(ctx, "com.news", func(ev *client.Event) { got <- ev }, nil); err != nil {
		t.Fatal(err)
	}
	r, body := e.do("POST", "/wamp/realm1/publish/com.news", `{"args":["hello"],"kwargs":{"n":1}}`)
	if r.StatusCode != 202 || len(body) != 0 {
		t.Fatalf("publish: %d %s", r.StatusCode, body)
	}
	ev, err := sse.next()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Topic       string         `json:"topic"`
		Publication uint64         `json:"publication"`
		Args        []any          `json:"args"`
		Kwargs      map[string]any `json:"kwargs"`
	}
	if err := json.Unmarshal([]byte(ev.data), &doc); err != nil || doc.Topic != "com.news" || doc.Args[0] != "hello" || doc.Kwargs["n"] != 1.0 {
		t.Fatalf("SSE event %+v (%v)", ev, err)
	}
	if ev.id != fmt.Sprint(doc.Publication) {
		t.Fatalf("SSE id %s, publication %d", ev.id, doc.Publication)
	}
	select {
	case wev := <-got:
		if wev.Args[0] != "hello" {
			t.Fatalf("WAMP event %+v", wev)
		}
	case <-ctx.Done():
		t.Fatal("no WAMP event")
	}

	// acknowledge: 200 with the publication id, which the SSE event carries.
	r, body = e.do("POST", "/wamp/realm1/publish/com.news", `{"args":[2],"options":{"acknowledge":true}}`)
	var ack struct{ Publication uint64 }
	if r.StatusCode != 200 || json.Unmarshal(body, &ack) != nil || ack.Publication == 0 {
		t.Fatalf("acknowledged publish: %d %s", r.StatusCode, body)
	}
	ev, err = sse.next()
	if err != nil || ev.id != fmt.Sprint(ack.Publication) {
		t.Fatalf("SSE event %+v (%v), want id %d", ev, err, ack.Publication)
	}

	// A WAMP publisher reaches the HTTP subscriber.
	if err := sub.Publish(ctx, "com.news", []any{"from wamp"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	ev, err = sse.next()
	if err != nil || !strings.Contains(ev.data, `"from wamp"`) {
		t.Fatalf("SSE event %+v (%v)", ev, err)
	}
}

// TestBridgeEventsPatterns: prefix and wildcard subscriptions carry the
// concrete topic.
func TestBridgeEventsPatterns(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, pre := e.stream(ctx, "GET", "/wamp/realm1/events/com.dev.?match=prefix", "")
	_, wild := e.stream(ctx, "GET", "/wamp/realm1/events/com..temp?match=wildcard", "")
	e.do("POST", "/wamp/realm1/publish/com.dev.a", `{"args":[1],"options":{"acknowledge":true}}`)
	e.do("POST", "/wamp/realm1/publish/com.x.temp", `{"args":[2],"options":{"acknowledge":true}}`)
	ev, err := pre.next()
	if err != nil || !strings.Contains(ev.data, `"topic":"com.dev.a"`) {
		t.Fatalf("prefix event %+v (%v)", ev, err)
	}
	ev, err = wild.next()
	if err != nil || !strings.Contains(ev.data, `"topic":"com.x.temp"`) {
		t.Fatalf("wildcard event %+v (%v)", ev, err)
	}
	r, body := e.do("GET", "/wamp/realm1/events/com.x?match=fuzzy", "")
	expectProblem(t, r, body, 400, proto.URIInvalidArgument)
}

// TestBridgeEventsRetained: retained=true and Last-Event-ID replay the
// topic's retained event, unless the client already has it.
func TestBridgeEventsRetained(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Another stream on the same topic (sharing the subscription) must not
	// get the replay meant for a newcomer.
	_, early := e.stream(ctx, "GET", "/wamp/realm1/events/com.state", "")
	r, body := e.do("POST", "/wamp/realm1/publish/com.state", `{"args":["v1"],"options":{"acknowledge":true,"retain":true}}`)
	var ack struct{ Publication uint64 }
	if r.StatusCode != 200 || json.Unmarshal(body, &ack) != nil {
		t.Fatalf("publish: %d %s", r.StatusCode, body)
	}
	if ev, err := early.next(); err != nil || ev.id != fmt.Sprint(ack.Publication) {
		t.Fatalf("live event %+v %v", ev, err)
	}
	_, sse := e.stream(ctx, "GET", "/wamp/realm1/events/com.state?retained=true", "")
	ev, err := sse.next()
	if err != nil || ev.id != fmt.Sprint(ack.Publication) || !strings.Contains(ev.data, `"retained":true`) {
		t.Fatalf("retained event %+v (%v)", ev, err)
	}
	// Reconnecting with the id it has: no replay; the next live event comes.
	_, again := e.stream(ctx, "GET", "/wamp/realm1/events/com.state", "", "Last-Event-ID", ev.id)
	// With another id: the replay.
	_, stale := e.stream(ctx, "GET", "/wamp/realm1/events/com.state", "", "Last-Event-ID", "1")
	if ev, err := stale.next(); err != nil || ev.id != fmt.Sprint(ack.Publication) {
		t.Fatalf("replay after Last-Event-ID 1: %+v %v", ev, err)
	}
	e.do("POST", "/wamp/realm1/publish/com.state", `{"args":["v2"],"options":{"acknowledge":true}}`)
	if ev, err := again.next(); err != nil || !strings.Contains(ev.data, `"v2"`) {
		t.Fatalf("after Last-Event-ID: %+v %v, want the live v2 event first", ev, err)
	}
	if ev, err := early.next(); err != nil || !strings.Contains(ev.data, `"v2"`) {
		t.Fatalf("the early stream got %+v %v, want v2 (and no replay)", ev, err)
	}
}

// TestBridgeProgressive: Accept: text/event-stream on a call streams the
// callee's progressive results, then the final one.
func TestBridgeProgressive(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.count", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		n := int(inv.Args[0].(int64))
		for i := 1; i <= n; i++ {
			if err := inv.SendProgress([]any{i}, nil); err != nil {
				return nil, err
			}
		}
		return &client.Result{Args: []any{"done"}}, nil
	})
	e.register(callee, "com.progfail", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		inv.SendProgress([]any{1}, nil)
		return nil, &client.Error{URI: "com.example.broken"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, sse := e.stream(ctx, "POST", "/wamp/realm1/call/com.count", `{"args":[5]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for i := 1; i <= 5; i++ {
		ev, err := sse.next()
		if err != nil || ev.event != "progress" || ev.data != fmt.Sprintf(`{"args":[%d],"kwargs":{}}`, i) {
			t.Fatalf("progress %d: %+v (%v)", i, ev, err)
		}
	}
	ev, err := sse.next()
	if err != nil || ev.event != "result" || ev.data != `{"args":["done"],"kwargs":{}}` {
		t.Fatalf("result: %+v (%v)", ev, err)
	}
	if _, err := sse.next(); err == nil {
		t.Fatal("the stream goes on after the result")
	}

	_, sse = e.stream(ctx, "POST", "/wamp/realm1/call/com.progfail", `{}`)
	if ev, err := sse.next(); err != nil || ev.event != "progress" {
		t.Fatalf("progress: %+v %v", ev, err)
	}
	ev, err = sse.next()
	var p problemDoc
	if err != nil || ev.event != "problem" || json.Unmarshal([]byte(ev.data), &p) != nil || p.Error != "com.example.broken" || p.Status != 502 {
		t.Fatalf("error event %+v (%v)", ev, err)
	}
}

// TestBridgeRBAC: a realm with security serves the bridge only to roles
// granted it; the router's RBAC then decides each call as for any session.
func TestBridgeRBAC(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.APIKeys = []APIKey{
			{Name: "alice", Key: "alice-key-0123456789", Realm: "secure", AuthID: "alice", Role: "user"},
			{Name: "bob", Key: "bob-key-0123456789ab", Realm: "secure", AuthID: "bob", Role: "nobridge"},
		}
	})
	svc := e.dial("secure", proto.JSON) // anonymous = role svc in this realm
	var caller atomic.Value
	e.register(svc, "com.ok.hello", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"hi"}}, nil
	})
	e.register(svc, "com.secret", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		caller.Store(inv.CallerAuthID)
		return &client.Result{Args: []any{"secret"}}, nil
	})
	r, body := e.do("POST", "/wamp/secure/call/com.ok.hello", `{}`)
	expectProblem(t, r, body, 401, proto.URIAuthenticationRequired)
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
	r, body = e.do("POST", "/wamp/secure/call/com.ok.hello", `{}`, "X-API-Key", "alice-key-0123456789")
	if r.StatusCode != 200 || !strings.Contains(string(body), `"hi"`) {
		t.Fatalf("granted call: %d %s", r.StatusCode, body)
	}
	r, body = e.do("POST", "/wamp/secure/call/com.secret", `{}`, "X-API-Key", "alice-key-0123456789")
	expectProblem(t, r, body, 403, proto.URINotAuthorized)
	if caller.Load() != nil {
		t.Fatal("the denied call reached the callee")
	}
	r, body = e.do("POST", "/wamp/secure/publish/com.secret", `{}`, "X-API-Key", "alice-key-0123456789")
	expectProblem(t, r, body, 403, proto.URINotAuthorized)
	r, body = e.do("POST", "/wamp/secure/call/com.ok.hello", `{}`, "X-API-Key", "bob-key-0123456789ab")
	expectProblem(t, r, body, 403, proto.URINotAuthorized)
	r, body = e.do("POST", "/wamp/secure/call/com.ok.hello", `{}`, "X-API-Key", "wrong-key-0123456789")
	expectProblem(t, r, body, 401, proto.URIAuthenticationRequired)
	r, body = e.do("POST", "/wamp/realm1/call/com.ok.hello", `{}`, "X-API-Key", "alice-key-0123456789")
	expectProblem(t, r, body, 403, proto.URINotAuthorized) // the key is for another realm
	r, body = e.do("POST", "/wamp/nosuch/call/com.ok.hello", `{}`)
	expectProblem(t, r, body, 404, proto.URINoSuchRealm)
}

// TestBridgeCallCalleeLeaves: a callee that leaves during the call makes
// it fail with wamp.error.canceled: 409.
func TestBridgeCallCalleeLeaves(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	callee, err := client.Dial(ctx, client.Config{URL: e.wamp, Realm: "realm1"})
	if err != nil {
		t.Fatal(err)
	}
	invoked := make(chan struct{})
	if _, err := callee.Register(ctx, "com.quit", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		close(invoked)
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	go func() { <-invoked; callee.Close() }()
	r, body := e.do("POST", "/wamp/realm1/call/com.quit", `{}`)
	expectProblem(t, r, body, 409, proto.URICanceled)
}

// An event stream whose SUBSCRIBE the router answers too late (its shard
// stalled past the gateway's wait) gets 503, and the subscription made
// after the client was answered does not stay on the pooled session.
func TestEventStreamAbandonedSubscribeIsUndone(t *testing.T) {
	laneFree(t)
	t.Setenv("EDGEWAMP_TEST_GATEWAY_LANE", "off") // the stall below stops the event loops
	e := newEnv(t, func(o *Options) { o.Limits.SessionsPerIdentity = 1 })
	e.gw.syncWait = 300 * time.Millisecond
	mon := e.dial("realm1", proto.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A first stream opens the pooled session the second one reuses.
	sctx, scancel := context.WithCancel(ctx)
	resp, _ := e.stream(sctx, "GET", "/wamp/realm1/events/com.warm", "")
	if resp.StatusCode != 200 {
		t.Fatalf("first stream: %s", resp.Status)
	}
	scancel()
	// Every shard blocked: the GET's SUBSCRIBE must queue behind the
	// stall. Waiting until each stall task runs also lets what was queued
	// before it (the first stream's cleanup, a drain of the shard's
	// mailbox that the SUBSCRIBE could join) run first: under load the
	// SUBSCRIBE once joined such a drain ahead of the stall, succeeded,
	// and the stream stayed open.
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock() // a failure below must not leave the loops blocked
	stalled := make(chan struct{}, e.r.Shards())
	for i := range e.r.Shards() {
		if err := e.r.Shard(i).Do(func() { stalled <- struct{}{}; <-release }); err != nil {
			t.Fatal(err)
		}
	}
	for range e.r.Shards() {
		<-stalled
	}
	var body []byte
	resp, body = e.do("GET", "/wamp/realm1/events/com.stalled", "")
	unblock()
	expectProblem(t, resp, body, 503, proto.URIUnavailable)
	// The late SUBSCRIBE has run by now or runs next; the lookup queues
	// behind it on the monitor's shard or runs on another: ask until the
	// answer is stable.
	time.Sleep(200 * time.Millisecond)
	res, err := mon.Call(ctx, "wamp.subscription.lookup", []any{"com.stalled"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Args) == 0 || res.Args[0] != nil {
		t.Fatalf("after the 503 the router still holds a subscription for the stream: lookup = %v", res.Args)
	}
}

// TestSSEStreamEndsWhenSubscriptionRemoved: the router may take the
// gateway session's subscription away (wamp.subscription.remove_subscriber,
// a reload's revocation). The gateway's sessions did not announce
// subscription_revocation, so the router did not tell them, and the SSE
// stream stayed open receiving nothing, for ever. Now the stream ends (an
// EventSource reconnects and subscribes again, if it still may), its last
// event a problem with the router's reason.
func TestSSEStreamEndsWhenSubscriptionRemoved(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, sse := e.stream(ctx, "GET", "/wamp/realm1/events/com.removed", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	admin := e.dial("realm1", proto.JSON)
	var subID, subscriber any
	waitFor(t, "the stream's subscription", func() bool {
		r, err := admin.Call(ctx, "wamp.subscription.lookup", []any{"com.removed"}, nil, nil)
		if err != nil || len(r.Args) == 0 || r.Args[0] == nil {
			return false
		}
		subID = r.Args[0]
		l, err := admin.Call(ctx, "wamp.subscription.list_subscribers", []any{subID}, nil, nil)
		if err != nil || len(l.Args) == 0 {
			return false
		}
		ids, _ := l.Args[0].([]any)
		if len(ids) != 1 {
			return false
		}
		subscriber = ids[0]
		return true
	})
	if _, err := admin.Call(ctx, "wamp.subscription.remove_subscriber", []any{subID, subscriber, "wamp.error.removed_by_test"}, nil, nil); err != nil {
		t.Fatalf("remove_subscriber: %v", err)
	}
	// Its last event says so (an application error URI: 502).
	expectEnded(t, sse, "the stream whose subscription the router took away",
		ending{502, "wamp.error.removed_by_test", "the router took the subscription away (wamp.error.removed_by_test)"})
}

// An event stream of a pattern with retained=true gets its retained events
// also when the router sends them after SUBSCRIBED: a get_retained pattern
// scans every retained topic of the realm, and past the pooled session's
// walk budget (route/walkbudget.go) the scan waits for the budget to
// refill. The gateway handed retained events only to the stream whose
// SUBSCRIBE was running, so those that came later went nowhere and the
// stream never got its replay. (On a mesh they always come later, after
// the other nodes answer: cmd's TestMeshGatewayRetainedReplay.)
func TestEventStreamRetainedAfterWalkBudget(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) { o.Limits.SessionsPerIdentity = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pub := e.dial("realm1", proto.MsgPack)
	// 20,000 retained topics: the budget's burst (65,536 entries) is three
	// scans, and it refills one every 38 ms.
	const topics = 20000
	for i := range topics {
		o := &client.PublishOptions{Retain: true, Acknowledge: i == topics-1}
		if err := pub.Publish(ctx, fmt.Sprintf("com.r.t%d", i), []any{i}, nil, o); err != nil {
			t.Fatal(err)
		}
	}
	// Eight streams, each of a prefix that matches one topic (t10000 to
	// t10007), opened one after the other on the pooled session; and one
	// stream of a matching prefix without retained=true, which must get no
	// replay.
	_, plain := e.stream(ctx, "GET", "/wamp/realm1/events/com.r.t1000?match=prefix", "")
	var streams []*sseReader
	for k := range 8 {
		resp, rd := e.stream(ctx, "GET", fmt.Sprintf("/wamp/realm1/events/com.r.t1000%d?match=prefix&retained=true", k), "")
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d: %s", k, resp.Status)
		}
		streams = append(streams, rd)
	}
	for k, rd := range streams {
		ev := nextEvent(t, rd, "", fmt.Sprint("stream ", k))
		if want := fmt.Sprintf(`"topic":"com.r.t1000%d"`, k); !strings.Contains(ev.data, want) || !strings.Contains(ev.data, `"retained":true`) {
			t.Fatalf("stream %d got %s, want its retained event (%s)", k, ev.data, want)
		}
	}
	// A live event now: every stream's next event is it, so none got a
	// second replay, and the plain stream's first event is it too.
	if err := pub.Publish(ctx, "com.r.t10003", []any{"live"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, plain, "", "the stream without retained=true"); !strings.Contains(ev.data, `"live"`) {
		t.Fatalf("the stream without retained=true got %s first, want the live event", ev.data)
	}
	if ev := nextEvent(t, streams[3], "", "stream 3"); !strings.Contains(ev.data, `"live"`) {
		t.Fatalf("stream 3 got %s after its replay, want the live event", ev.data)
	}
}

// rolesVerifier accepts the tokens it names, each for a principal of
// realm secure whose authid is the token and whose roles are the ones
// given, the first its authrole (the role its requests act as).
type rolesVerifier map[string][]string

func (v rolesVerifier) VerifyBearer(_ context.Context, token string) (*Principal, error) {
	roles, ok := v[token]
	if !ok {
		return nil, fmt.Errorf("not a token")
	}
	return &Principal{Realm: "secure", AuthID: token, AuthRole: roles[0], Roles: roles, Expires: time.Now().Add(time.Hour)}, nil
}

// README: "on a realm with security: true only roles with http_bridge:
// true may use them [the bridge endpoints]". A bearer principal whose
// requests act as role "nobridge" (not granted the bridge) was served by
// the bridge because it also holds "user": bridgeAccess asked whether the
// principal holds any bridge role (who.hasRole looks at every role of
// the token), not whether the role the requests act as has it. The
// router then authorized the call as nobridge, a role the configuration
// keeps off the bridge.
func TestBridgeServesRoleWithoutBridgeAccess(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) { o.Bearer = rolesVerifier{"carol": {"nobridge", "user"}} })
	svc := e.dial("secure", proto.JSON) // anonymous = role svc
	var role atomic.Value
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := svc.Register(ctx, "com.ok.hello", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		role.Store(inv.CallerAuthRole)
		return &client.Result{Args: []any{"hi"}}, nil
	}, &client.RegisterOptions{DiscloseCaller: true}); err != nil {
		t.Fatal(err)
	}
	r, body := e.do("POST", "/wamp/secure/call/com.ok.hello", `{}`, "Authorization", "Bearer carol")
	if r.StatusCode != 403 {
		t.Errorf("a request acting as role nobridge (no http_bridge) got %d %s from the bridge, want 403 %s; the callee saw caller role %v",
			r.StatusCode, strings.TrimSpace(string(body)), proto.URINotAuthorized, role.Load())
	}
}

// TestBridgeRefusesSessionScopedMeta: wamp.session.add_testament (and
// flush_testaments) act on the caller's own session; an HTTP request has
// none, its call lands on one of the pooled sessions every request of its
// principal shares (for the anonymous principal, every HTTP client), so
// the testament fired when the pool closed that session (session_idle),
// announcing the death of nothing, and any other client could flush it
// (found by the broker review). The bridge (plain and streamed) refuses
// them with 403 wamp.error.not_authorized before they reach the router,
// and a route that calls one is refused by Validate.
func TestBridgeRefusesSessionScopedMeta(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits.SessionIdle = 400 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watcher := e.dial("realm1", proto.JSON)
	got := make(chan []any, 4)
	if _, err := watcher.Subscribe(ctx, "com.dead", func(ev *client.Event) { got <- ev.Args }, nil); err != nil {
		t.Fatal(err)
	}
	resp, body := e.do("POST", "/wamp/realm1/call/wamp.session.add_testament", `{"args":["com.dead",["client X is gone"]]}`)
	if resp.StatusCode == 200 {
		select {
		case a := <-got:
			t.Fatalf("add_testament over HTTP answered 200 %s; the pooled session's idle close then published %v, though the HTTP client never had a session", body, a)
		case <-time.After(3 * time.Second):
			t.Fatalf("add_testament over HTTP answered 200 %s (kept on a pooled session)", body)
		}
	}
	p := expectProblem(t, resp, body, 403, proto.URINotAuthorized)
	if !strings.Contains(p.Detail, "own WAMP session") {
		t.Errorf("detail %q", p.Detail)
	}
	resp, body = e.do("POST", "/wamp/realm1/call/wamp.session.flush_testaments", `{}`)
	expectProblem(t, resp, body, 403, proto.URINotAuthorized)
	resp, body = e.do("POST", "/wamp/realm1/call/wamp.session.add_testament", `{"args":["com.dead",[]]}`, "Accept", "text/event-stream")
	expectProblem(t, resp, body, 403, proto.URINotAuthorized)
	// Other meta procedures still go through.
	if resp, body := e.do("POST", "/wamp/realm1/call/wamp.session.count", `{}`); resp.StatusCode != 200 {
		t.Fatalf("wamp.session.count: %d %s", resp.StatusCode, body)
	}

	err := Validate(Options{Addr: "127.0.0.1:0", Routes: []Route{{Method: "POST", Path: "/bye", Realm: "realm1", Call: "wamp.session.add_testament"}}})
	var fe *FieldError
	if !errors.As(err, &fe) || fmt.Sprint(fe.Path) != "[routes 0 call]" || !strings.Contains(fe.Msg, "own WAMP session") {
		t.Errorf("a route calling wamp.session.add_testament: %v, want a FieldError at routes 0 call", err)
	}
}

// TestErrorMappedTo499Answered: an error URI the configuration maps to
// 499 (gateway.errors, a route's errors: they take 400-599) is answered
// with it and its problem document, on the bridge (the lane's and
// net/http's) and on a route, where a status of 499 was taken for the
// sign of a client gone, and the failed call was answered 200 with an
// empty body, as if it had succeeded.
func TestErrorMappedTo499Answered(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Errors = map[string]int{"com.app.gone": 499}
		o.Routes = []Route{{Name: "fail", Method: "POST", Path: "/fail", Realm: "realm1", Call: "com.fail",
			Errors: map[string]int{"com.app.other": 499}}}
	})
	callee := e.dial("realm1", proto.JSON)
	uri := atomic.Value{}
	e.register(callee, "com.fail", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return nil, &client.Error{URI: uri.Load().(string), Args: []any{"it went"}}
	})
	for _, c := range []struct{ uri, path string }{
		{"com.app.gone", "/wamp/realm1/call/com.fail"},
		{"com.app.gone", "/wamp/realm1/call/com.fail"}, // the lane's fast path: its session is open
		{"com.app.other", "/fail"},
	} {
		uri.Store(c.uri)
		r, body := e.do("POST", c.path, `{}`)
		p := expectProblem(t, r, body, 499, c.uri)
		if p.Detail != "it went" {
			t.Fatalf("%s: detail %q", c.path, p.Detail)
		}
	}
}
