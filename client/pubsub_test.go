package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

func TestPublish(t *testing.T) {
	s, c := setup(t, "ws", proto.JSON)
	noErr(t, "Publish", s.Publish(context.Background(), "com.example.t", []any{1}, map[string]any{"a": "b"}, nil))
	m := c.expect(proto.CodePublish)
	eq(t, "topic", string(m.URI), "com.example.t")
	eq(t, "options", m.Opt.Len(), 0)
	args, kwargs := c.payload(m)
	eq(t, "args", args, []any{int64(1)})
	eq(t, "kwargs", kwargs, map[string]any{"a": "b"})

	no := false
	opts := &PublishOptions{
		Acknowledge: true, ExcludeMe: &no, DiscloseMe: true, Retain: true,
		Exclude: []uint64{5}, Eligible: []uint64{6, 7}, ExcludeAuthID: []string{"eve"},
		EligibleAuthRole: []string{"user"},
	}
	a := goDo(func() (struct{}, error) {
		return struct{}{}, s.Publish(context.Background(), "com.example.t", nil, nil, opts)
	})
	m = c.expect(proto.CodePublish)
	eq(t, "acknowledged publish options", c.dict(m), map[string]any{
		"acknowledge": true, "exclude_me": false, "disclose_me": true, "retain": true,
		"exclude": []any{int64(5)}, "eligible": []any{int64(6), int64(7)},
		"exclude_authid": []any{"eve"}, "eligible_authrole": []any{"user"},
	})
	eq(t, "decoded eligible", m.Opt.IDs(proto.KeyEligible, nil), []uint64{6, 7})
	c.send(&proto.Message{Type: proto.CodePublished, Request: m.Request, ID: 1234})
	_, err := a.wait(t)
	noErr(t, "acknowledged Publish", err)

	a = goDo(func() (struct{}, error) {
		return struct{}{}, s.Publish(context.Background(), "com.example.t", nil, nil, &PublishOptions{Acknowledge: true})
	})
	m = c.expect(proto.CodePublish)
	c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodePublish, Request: m.Request, URI: []byte(proto.URINotAuthorized)})
	_, err = a.wait(t)
	wampErr(t, err, proto.URINotAuthorized)
}

// subscribe subscribes h and plays the router's SUBSCRIBED.
func subscribe(t *testing.T, s *Session, c *peerConn, topic string, subID uint64, h func(*Event), opts *SubscribeOptions) (*Subscription, *proto.Message) {
	t.Helper()
	a := goDo(func() (*Subscription, error) { return s.Subscribe(context.Background(), topic, h, opts) })
	m := c.expect(proto.CodeSubscribe)
	eq(t, "topic", string(m.URI), topic)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: subID})
	sub, err := a.wait(t)
	noErr(t, "Subscribe", err)
	eq(t, "subscription id", sub.ID(), subID)
	return sub, m
}

func event(c *peerConn, subID, pubID uint64, args []any, details map[string]any) *proto.Message {
	m := &proto.Message{Type: proto.CodeEvent, ID: subID, ID2: pubID, Dict: c.raw(details)}
	if args != nil {
		m.Args = c.raw(args)
	}
	return m
}

func TestSubscribeEventOrder(t *testing.T) {
	s, c := setup(t, "rs", proto.MsgPack)
	const n = 200
	events := make(chan *Event, n)
	_, m := subscribe(t, s, c, "com.example.", 21, func(e *Event) { events <- e }, &SubscribeOptions{Match: "prefix", GetRetained: true})
	eq(t, "match", m.Opt.Match(), proto.MatchPrefix)
	eq(t, "get_retained", m.Opt.Bool(proto.KeyGetRetained, false), true)

	c.send(event(c, 21, 1000, []any{"retained"}, map[string]any{"retained": true, "topic": "com.example.a", "publisher": 3}))
	for i := range n {
		c.send(event(c, 21, uint64(1001+i), []any{i}, map[string]any{"topic": "com.example.b"}))
	}
	e := recvEvent(t, events)
	eq(t, "retained", e.Retained, true)
	eq(t, "topic", e.Topic, "com.example.a")
	eq(t, "publisher", e.Publisher, uint64(3))
	eq(t, "subscription", e.SubscriptionID, uint64(21))
	eq(t, "publication", e.PublicationID, uint64(1000))
	for i := range n {
		e := recvEvent(t, events)
		eq(t, "event order", e.Args, []any{int64(i)})
		eq(t, "retained", e.Retained, false)
	}
}

func recvEvent(t *testing.T, ch <-chan *Event) *Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(wait):
		t.Fatal("no event")
		return nil
	}
}

func TestUnsubscribe(t *testing.T) {
	s, c := setup(t, "wsb", proto.MsgPack)
	events := make(chan *Event, 10)
	h := func(e *Event) { events <- e }
	sub1, _ := subscribe(t, s, c, "com.example.t", 22, h, nil)
	// A second subscription to the same topic shares the router's id.
	sub2, _ := subscribe(t, s, c, "com.example.t", 22, h, nil)
	c.send(event(c, 22, 1, nil, map[string]any{}))
	e1, e2 := recvEvent(t, events), recvEvent(t, events)
	if e1 != e2 {
		t.Fatal("both local subscriptions should get the same event")
	}
	eq(t, "topic defaults to the subscribed one", e1.Topic, "com.example.t")

	// Dropping one of them sends nothing.
	noErr(t, "Unsubscribe 1", s.Unsubscribe(context.Background(), sub1))
	eq(t, "sub1 active", sub1.Active(), false)
	// Dropping the last one sends UNSUBSCRIBE.
	a := goDo(func() (struct{}, error) { return struct{}{}, s.Unsubscribe(context.Background(), sub2) })
	m := c.expect(proto.CodeUnsubscribe)
	eq(t, "subscription", m.ID, uint64(22))
	c.send(&proto.Message{Type: proto.CodeUnsubscribed, Request: m.Request})
	_, err := a.wait(t)
	noErr(t, "Unsubscribe 2", err)
	if err := s.Unsubscribe(context.Background(), sub2); !errors.Is(err, ErrNotSubscribed) {
		t.Fatalf("second Unsubscribe = %v, want ErrNotSubscribed", err)
	}

	// A late event is dropped.
	c.send(event(c, 22, 2, nil, map[string]any{}))
	noErr(t, "Publish", s.Publish(context.Background(), "x", nil, nil, nil))
	c.expect(proto.CodePublish)
	select {
	case <-events:
		t.Fatal("event delivered after Unsubscribe")
	case <-time.After(20 * time.Millisecond):
	}
}

func TestSubscriptionRevoked(t *testing.T) {
	s, c := setup(t, "rs", proto.CBOR)
	sub, _ := subscribe(t, s, c, "com.example.t", 23, func(*Event) {}, nil)
	c.send(&proto.Message{Type: proto.CodeUnsubscribed, HasDict: true, Dict: c.raw(map[string]any{"subscription": 23, "reason": "wamp.error.killed"})})
	deadline := time.Now().Add(wait)
	for sub.Active() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	eq(t, "active after revocation", sub.Active(), false)
}

// abandonSubscribe runs a Subscribe to topic whose context ends before the
// router answers, and returns its SUBSCRIBE.
func abandonSubscribe(t *testing.T, s *Session, c *peerConn, topic string) *proto.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := goDo(func() (*Subscription, error) { return s.Subscribe(ctx, topic, func(*Event) {}, nil) })
	m := c.expect(proto.CodeSubscribe)
	cancel()
	if _, err := a.wait(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned Subscribe = %v, want context.Canceled", err)
	}
	return m
}

// A Subscribe given up before its SUBSCRIBED, then another to the same
// topic (a retry): the router answers both with the session's one
// subscription id. The late answer to the first is not undone while the
// second waits for that id: its UNSUBSCRIBE would take down the
// subscription the second is given.
func TestSubscribeAgainAfterAbandoned(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	m1 := abandonSubscribe(t, s, c, "com.example.t")
	events := make(chan *Event, 4)
	a := goDo(func() (*Subscription, error) {
		return s.Subscribe(context.Background(), "com.example.t", func(e *Event) { events <- e }, nil)
	})
	m2 := c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m1.Request, ID: 7},
		&proto.Message{Type: proto.CodeSubscribed, Request: m2.Request, ID: 7})
	sub, err := a.wait(t)
	noErr(t, "Subscribe", err)
	eq(t, "active", sub.Active(), true)
	// Nothing is sent between: the next message is this PUBLISH.
	noErr(t, "Publish", s.Publish(context.Background(), "x", nil, nil, nil))
	c.expect(proto.CodePublish)
	c.send(event(c, 7, 1, []any{"e"}, map[string]any{}))
	eq(t, "event", recvEvent(t, events).Args, []any{"e"})
}

// A Subscribe given up before its SUBSCRIBED, and nothing else subscribed
// to the topic: the late SUBSCRIBED is undone with an UNSUBSCRIBE that is
// a request of its own (its UNSUBSCRIBED retires what is under the id, as
// Unsubscribe's does). When another Subscribe to the topic was waiting for
// the id but is refused, the id is undone then.
func TestSubscribeAbandonedUndone(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	m := abandonSubscribe(t, s, c, "com.example.t")
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 8})
	u := c.expect(proto.CodeUnsubscribe)
	eq(t, "undone subscription", u.ID, uint64(8))
	s.mu.Lock()
	rq := s.reqs[u.Request]
	s.mu.Unlock()
	if rq == nil || rq.typ != proto.CodeUnsubscribe || rq.subID != 8 {
		t.Fatalf("the undo's UNSUBSCRIBE is not a pending request: %+v", rq)
	}
	c.send(&proto.Message{Type: proto.CodeUnsubscribed, Request: u.Request})
	select {
	case r := <-rq.reply:
		noErr(t, "undo", r.err)
	case <-time.After(wait):
		t.Fatal("the undo's UNSUBSCRIBED was not taken for its answer")
	}

	m1 := abandonSubscribe(t, s, c, "com.example.t")
	a := goDo(func() (*Subscription, error) {
		return s.Subscribe(context.Background(), "com.example.t", func(*Event) {}, nil)
	})
	m2 := c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m1.Request, ID: 9},
		&proto.Message{Type: proto.CodeError, ReqType: proto.CodeSubscribe, Request: m2.Request, URI: []byte(proto.URINotAuthorized)})
	_, err := a.wait(t)
	wampErr(t, err, proto.URINotAuthorized)
	u = c.expect(proto.CodeUnsubscribe)
	eq(t, "undone subscription", u.ID, uint64(9))
}

// TestEventBackpressure fills a one-slot event queue behind a blocked
// handler: the reader stops reading (so a later RESULT waits too), nothing
// is lost, and Close still returns with every goroutine gone.
func TestEventBackpressure(t *testing.T) {
	s, c := setup(t, "ws", proto.JSON, func(cfg *Config) { cfg.EventQueue = 1 })
	release := make(chan struct{})
	events := make(chan *Event, 10)
	subscribe(t, s, c, "com.example.t", 24, func(e *Event) {
		<-release
		events <- e
	}, nil)
	call := goDo(func() (*Result, error) { return s.Call(context.Background(), "p", nil, nil, nil) })
	m := c.expect(proto.CodeCall)
	// Event 0 is in the handler, event 1 in the queue, the reader is stuck
	// on event 2, and the RESULT behind it is not read.
	for i := range 3 {
		c.send(event(c, 24, uint64(i+1), []any{i}, map[string]any{}))
	}
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request})
	if !call.pending(50 * time.Millisecond) {
		t.Fatal("the RESULT behind a full event queue was read")
	}
	close(release)
	_, err := call.wait(t)
	noErr(t, "Call", err)
	for i := range 3 {
		eq(t, "event", recvEvent(t, events).Args, []any{int64(i)})
	}
}

// While the reader waits for room in a full event queue it reads nothing,
// so the router cannot be heard: the keepalive (100 + 100 ms) must not
// take that wait (a handler busy for 0.7 s) for a dead router and end the
// session, dropping the events behind it.
func TestKeepAliveDuringBackpressure(t *testing.T) {
	s, c := setup(t, "ws", proto.JSON, keepAlive, func(cfg *Config) { cfg.EventQueue = 1 })
	release := make(chan struct{})
	events := make(chan *Event, 10)
	subscribe(t, s, c, "com.example.t", 26, func(e *Event) {
		<-release
		events <- e
	}, nil)
	// Event 0 in the handler, event 1 in the queue, the reader waits with
	// event 2, and event 3 is not read.
	for i := range 4 {
		c.send(event(c, 26, uint64(i+1), []any{i}, map[string]any{}))
	}
	time.Sleep(700 * time.Millisecond)
	close(release)
	for i := range 4 {
		eq(t, "event", recvEvent(t, events).Args, []any{int64(i)})
	}
	noErr(t, "session", s.Err())
}

func TestCloseWithFullEventQueue(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) { cfg.EventQueue = 1 })
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	subscribe(t, s, c, "com.example.t", 25, func(e *Event) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}, nil)
	for i := range 5 {
		c.send(event(c, 25, uint64(i+1), nil, map[string]any{}))
	}
	<-entered
	done := goDo(func() (struct{}, error) { return struct{}{}, s.Close() })
	c.expect(proto.CodeGoodbye)
	c.send(&proto.Message{Type: proto.CodeGoodbye, URI: []byte(proto.CloseGoodbyeAndOut)})
	if !done.pending(50 * time.Millisecond) {
		t.Fatal("Close returned while an event handler was still running")
	}
	close(release)
	done.wait(t)
	eq(t, "Err", s.Err(), ErrClosed)
}

// An acknowledged Publish whose context ends before PUBLISHED is
// forgotten: there is nothing to undo for a publication, and a late
// PUBLISHED or ERROR is ignored as an answer to an unknown request (found
// by review: it stayed in the session's request table as abandoned until
// the router answered, so a router that never answers made the table grow
// for the session's life, one entry per timed-out Publish).
func TestAbandonedPublishesDropped(t *testing.T) {
	s, c := setup(t, "rs", proto.MsgPack)
	const n = 500
	ids := make(chan []uint64, 1)
	go func() { // the peer reads the PUBLISH messages, up to the marker
		var got []uint64
		defer func() { ids <- got }()
		for {
			c.conn.SetReadDeadline(time.Now().Add(wait))
			b, err := c.readFrame()
			if err != nil {
				return
			}
			m, err := proto.Decode(c.ser, b)
			if err != nil || string(m.URI) == "marker" {
				return
			}
			got = append(got, m.Request)
		}
	}()
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		err := s.Publish(ctx, "com.example.t", []any{1}, nil, &PublishOptions{Acknowledge: true})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish = %v, want the context's error", err)
		}
	}
	noErr(t, "Publish (marker)", s.Publish(context.Background(), "marker", nil, nil, nil))
	sent := <-ids // the peer has read every PUBLISH (a Publish whose context ended first sends none)
	if len(sent) < 10 {
		t.Fatalf("%d PUBLISH messages sent", len(sent))
	}
	s.mu.Lock()
	held := len(s.reqs)
	s.mu.Unlock()
	if held != 0 {
		t.Fatalf("%d abandoned acknowledged publications are held in the request table after %d timed-out Publish calls (the router never answered); want 0", held, n)
	}
	// Late answers are ignored, and the session goes on.
	for i, id := range sent[:10] {
		if i%2 == 0 {
			c.send(&proto.Message{Type: proto.CodePublished, Request: id, ID: uint64(1000 + i)})
		} else {
			c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodePublish, Request: id, URI: []byte(proto.URINotAuthorized)})
		}
	}
	a := goDo(func() (struct{}, error) {
		return struct{}{}, s.Publish(context.Background(), "com.example.t", nil, nil, &PublishOptions{Acknowledge: true})
	})
	m := c.expect(proto.CodePublish)
	c.send(&proto.Message{Type: proto.CodePublished, Request: m.Request, ID: 2000})
	_, err := a.wait(t)
	noErr(t, "acknowledged Publish after the late answers", err)
}

// Abandoned SUBSCRIBE requests (REGISTER and UNSUBSCRIBE likewise) are
// kept, to undo a late SUBSCRIBED, but at most maxAbandoned of them: one
// more ends the session with ErrTooManyAbandoned (found by review: they
// were held for the session's life when the router never answered). One
// answered late no longer counts (its undo UNSUBSCRIBE counts until it is
// answered).
func TestAbandonedRequestsBounded(t *testing.T) {
	old := maxAbandoned
	maxAbandoned = 4
	t.Cleanup(func() { maxAbandoned = old })
	s, c := setup(t, "rs", proto.JSON)
	abandon := func(topic string) *proto.Message {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		a := goDo(func() (*Subscription, error) { return s.Subscribe(ctx, topic, func(*Event) {}, nil) })
		m := c.expect(proto.CodeSubscribe)
		if _, err := a.wait(t); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Subscribe: %v, want context.DeadlineExceeded", err)
		}
		return m
	}
	abandoned := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.abandoned
	}
	var late []*proto.Message
	for i := range 4 {
		late = append(late, abandon(fmt.Sprint("com.example.t", i)))
	}
	eq(t, "abandoned", abandoned(), 4)
	for i, m := range late {
		c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: uint64(100 + i)})
		u := c.expect(proto.CodeUnsubscribe) // the late subscription undone
		eq(t, "undone subscription", u.ID, uint64(100+i))
		c.send(&proto.Message{Type: proto.CodeUnsubscribed, Request: u.Request})
	}
	// The undo UNSUBSCRIBEs count until their UNSUBSCRIBED is read.
	for deadline := time.Now().Add(wait); abandoned() != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	eq(t, "abandoned after the late answers", abandoned(), 0)
	for i := range 4 {
		abandon(fmt.Sprint("com.example.u", i))
	}
	if err := s.Err(); err != nil {
		t.Fatalf("the session ended with %d abandoned requests: %v", maxAbandoned, err)
	}
	abandon("com.example.last")
	select {
	case <-s.Done():
	case <-time.After(wait):
		t.Fatal("the session goes on with more than maxAbandoned abandoned requests")
	}
	if !errors.Is(s.Err(), ErrTooManyAbandoned) {
		t.Fatalf("session error %v, want ErrTooManyAbandoned", s.Err())
	}
}

// A Publish, Register, Subscribe, Unregister or Unsubscribe whose context
// has already ended sends nothing and returns the context's error, as Call
// does (found by review: an acknowledged Publish, a Register or a
// Subscribe sent its request and then reported the context's error, so
// the event was published although Publish said it failed, and an
// application that retried published it twice).
func TestRequestsWithEndedContext(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	reg, _ := register(t, s, c, "com.example.r", 5, func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
	sub, _ := subscribe(t, s, c, "com.example.s", 6, func(*Event) {}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Publish(ctx, "com.example.order_placed", []any{42}, nil, &PublishOptions{Acknowledge: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish = %v, want context.Canceled", err)
	}
	if err := s.Publish(ctx, "com.example.order_placed", []any{43}, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("unacknowledged Publish = %v, want context.Canceled", err)
	}
	_, err = s.Register(ctx, "com.example.p", func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Register = %v, want context.Canceled", err)
	}
	if _, err := s.Subscribe(ctx, "com.example.q", func(*Event) {}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe = %v, want context.Canceled", err)
	}
	if err := s.Unregister(ctx, reg); !errors.Is(err, context.Canceled) || !reg.Active() {
		t.Fatalf("Unregister = %v, active %v; want context.Canceled, still active", err, reg.Active())
	}
	if err := s.Unsubscribe(ctx, sub); !errors.Is(err, context.Canceled) || !sub.Active() {
		t.Fatalf("Unsubscribe = %v, active %v; want context.Canceled, still active", err, sub.Active())
	}
	noErr(t, "Publish (marker)", s.Publish(context.Background(), "marker", nil, nil, nil))
	var sent []string
	for {
		m := c.recv()
		if m.Type == proto.CodePublish && string(m.URI) == "marker" {
			break
		}
		sent = append(sent, m.Type.String()+" "+string(m.URI))
	}
	if len(sent) > 0 {
		t.Fatalf("with an ended context, the requests returned context.Canceled but sent %q", sent)
	}
}

// The UNSUBSCRIBEs that undo the late SUBSCRIBEDs of abandoned Subscribes
// are requests nobody waits for, as the abandoned Subscribes were: they
// count among the abandoned requests, so that a router that answers the
// SUBSCRIBEs but never the UNSUBSCRIBEs ends the session past
// maxAbandoned. Before, they were not counted: a loop of Subscribes given
// up made the session keep a pending UNSUBSCRIBE for each, without bound.
func TestUndoUnsubscribesCountAsAbandoned(t *testing.T) {
	old := maxAbandoned
	maxAbandoned = 4
	t.Cleanup(func() { maxAbandoned = old })
	s, c := setup(t, "rs", proto.JSON)
	pending := func() (reqs, abandoned int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.reqs), s.abandoned
	}
loop:
	for i := range 3 * maxAbandoned {
		m := abandonSubscribe(t, s, c, fmt.Sprint("com.example.t", i))
		c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: uint64(100 + i)})
		if i >= maxAbandoned {
			select {
			case <-s.Done():
				break loop
			case <-time.After(100 * time.Millisecond):
			}
		}
		u := c.expect(proto.CodeUnsubscribe) // never answered
		eq(t, "undone subscription", u.ID, uint64(100+i))
	}
	select {
	case <-s.Done():
	default:
		reqs, ab := pending()
		t.Fatalf("the session goes on with %d undo UNSUBSCRIBEs unanswered (%d requests pending, %d counted abandoned; bound %d)", 3*maxAbandoned, reqs, ab, maxAbandoned)
	}
	if !errors.Is(s.Err(), ErrTooManyAbandoned) {
		t.Fatalf("session error %v, want ErrTooManyAbandoned", s.Err())
	}
}

// A SUBSCRIBED reusing the subscription id of another topic, or of the
// same topic with another match policy, is a protocol violation (found by
// review: the new Subscription joined the old one's under the id, and got
// its events); the same topic and policy sharing the id is the router's
// rule, and stands.
func TestSubscribedReusingHeldID(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	events := make(chan string, 4)
	h := func(name string) func(*Event) { return func(*Event) { events <- name } }
	subscribe(t, s, c, "com.a", 20, h("com.a"), nil)
	subscribe(t, s, c, "com.a", 20, h("com.a again"), nil) // shared, as the router does
	a := goDo(func() (*Subscription, error) {
		return s.Subscribe(context.Background(), "com.a", h("com.a prefix"), &SubscribeOptions{Match: "prefix"})
	})
	m := c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 20},
		event(c, 20, 1, []any{1}, map[string]any{}))
	ab := c.expect(proto.CodeAbort)
	eq(t, "abort reason", string(ab.URI), proto.URIProtocolViolation)
	if _, err := a.wait(t); err == nil || !strings.Contains(err.Error(), "protocol violation") {
		t.Fatalf("prefix Subscribe answered with the exact one's subscription id: %v, want a protocol violation", err)
	}
	<-s.Done()
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), `which "com.a" (exact) holds`) {
		t.Fatalf("Err = %v", err)
	}
	select {
	case got := <-events:
		t.Fatalf("an event of subscription 20 reached %q after the violation", got)
	case <-time.After(50 * time.Millisecond):
	}
}
