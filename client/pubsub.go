package client

import (
	"context"
	"reflect"
	"runtime"
	"runtime/debug"
	"sync/atomic"

	"github.com/edgewamp/edgewamp/proto"
)

// PublishOptions are the options of a publication. The zero value (or nil)
// is an unacknowledged publication to every other subscriber.
type PublishOptions struct {
	// Acknowledge asks for PUBLISHED; Publish then waits for it and
	// returns the router's refusal as an *Error.
	Acknowledge bool
	// ExcludeMe, when set, is sent as exclude_me (the router's default is
	// true: the publisher does not receive its own event).
	ExcludeMe *bool
	// DiscloseMe asks the router to disclose the publisher's identity.
	DiscloseMe bool
	// Retain asks the router to retain the event for later subscribers.
	Retain bool
	// Exclude, Eligible and the AuthID/AuthRole lists are the subscriber
	// black and white lists; each is sent when not nil (an empty Eligible
	// list means nobody is eligible).
	Exclude, Eligible                []uint64
	ExcludeAuthID, ExcludeAuthRole   []string
	EligibleAuthID, EligibleAuthRole []string
	// Options are extra raw PUBLISH.Options keys; they override the keys
	// above of the same name.
	Options map[string]any
}

// SubscribeOptions are the options of a subscription. The zero value (or
// nil) is an exact subscription.
type SubscribeOptions struct {
	// Match is the match policy: "exact" (the default), "prefix" or
	// "wildcard".
	Match string
	// GetRetained asks for the topic's retained event, if any. A Client
	// asks again on every new session, so that a retained event
	// published while it had none is delivered, but does not deliver
	// again a retained event the handler was given already (the same
	// publication id as the topic's last event).
	GetRetained bool
	// Options are extra raw SUBSCRIBE.Options keys; they override the keys
	// above of the same name.
	Options map[string]any
}

// Event is one received event. Handlers share it: do not modify it.
type Event struct {
	Args    []any
	Kwargs  map[string]any
	Details map[string]any
	// Topic is EVENT.Details.topic (the published URI, for pattern
	// subscriptions), or the subscribed topic.
	Topic string
	// Publisher is the publisher's session id when disclosed, else 0.
	Publisher uint64
	// Retained is true for a retained event delivered on subscription.
	Retained       bool
	SubscriptionID uint64
	PublicationID  uint64
}

// Subscription is an active subscription.
type Subscription struct {
	s      *Session
	topic  string       // Static.
	h      func(*Event) // Static.
	match  string       // Static: the match policy (matchOf).
	id     uint64       // Set by the reader before Subscribe returns.
	active atomic.Bool  // Until Unsubscribe, revocation or the session's end.
	// revocation is as Registration's.
	revocation atomic.Pointer[string]
}

// ID returns the subscription id the router assigned. Several
// subscriptions of one session to the same topic share the id.
func (sub *Subscription) ID() uint64 { return sub.id }

// Topic returns the subscribed topic URI (or pattern).
func (sub *Subscription) Topic() string { return sub.topic }

// Active reports whether the subscription is still in place: false after
// Unsubscribe, after the router revoked it, and after the session ended.
func (sub *Subscription) Active() bool { return sub.active.Load() }

// delivery is one queued event for one subscription.
type delivery struct {
	sub  *Subscription
	ev   *Event
	size int // what the event holds (onEvent), on its first delivery only (Session.evBytes)
}

// Publish publishes an event to topic. Without opts.Acknowledge it returns
// once the PUBLISH is written (a refusal by the router is then only
// logged); with it, it waits for PUBLISHED and returns a refusal as an
// *Error. When ctx has already ended it sends nothing and returns
// ctx.Err(), as Call, Register, Subscribe, Unregister and Unsubscribe do.
//
// [PUBLISH, Request|id, Options|dict, Topic|uri, Arguments|list, ArgumentsKw|dict]
func (s *Session) Publish(ctx context.Context, topic string, args []any, kwargs map[string]any, opts *PublishOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m := &proto.Message{Type: proto.CodePublish, URI: []byte(topic)}
	if err := s.publishOptions(opts).apply(m); err != nil {
		return err
	}
	var err error
	if m.Args, m.Kwargs, err = encodePayload(s.ser, args, kwargs); err != nil {
		return err
	}
	if opts == nil || !opts.Acknowledge {
		s.mu.Lock()
		if s.err != nil {
			s.mu.Unlock()
			return s.lost
		}
		m.Request = s.newRequestID()
		s.mu.Unlock()
		return s.sendCtx(ctx, m)
	}
	rq := newRequest(proto.CodePublish)
	id, err := s.addRequest(rq)
	if err != nil {
		return err
	}
	_, err = s.roundTrip(ctx, m, id, rq)
	return err
}

func (s *Session) publishOptions(opts *PublishOptions) *options {
	if opts == nil {
		return newOptions(s.ser, nil)
	}
	o := newOptions(s.ser, opts.Options)
	if opts.Acknowledge {
		o.setBool(proto.KeyAcknowledge, true)
	}
	if opts.ExcludeMe != nil {
		o.setBool(proto.KeyExcludeMe, *opts.ExcludeMe)
	}
	if opts.DiscloseMe {
		o.setBool(proto.KeyDiscloseMe, true)
	}
	if opts.Retain {
		o.setBool(proto.KeyRetain, true)
	}
	for _, l := range [...]struct {
		k proto.Key
		v []uint64
	}{{proto.KeyExclude, opts.Exclude}, {proto.KeyEligible, opts.Eligible}} {
		if l.v != nil {
			o.setValue(l.k, l.v)
		}
	}
	for _, l := range [...]struct {
		k proto.Key
		v []string
	}{
		{proto.KeyExcludeAuthID, opts.ExcludeAuthID}, {proto.KeyExcludeAuthRole, opts.ExcludeAuthRole},
		{proto.KeyEligibleAuthID, opts.EligibleAuthID}, {proto.KeyEligibleAuthRole, opts.EligibleAuthRole},
	} {
		if l.v != nil {
			o.setValue(l.k, l.v)
		}
	}
	return o
}

// Subscribe subscribes h to topic and waits for the router's SUBSCRIBED. A
// nil h drops the events. A refusal is returned as an *Error; when ctx has already ended nothing is
// sent and ctx.Err() is returned. Events may reach h before Subscribe
// returns (a retained event, for instance). h runs on the session's event
// dispatcher goroutine, one event at a time, in the order the router sent
// them; see the package documentation for the queue in front of it.
//
// [SUBSCRIBE, Request|id, Options|dict, Topic|uri]
func (s *Session) Subscribe(ctx context.Context, topic string, h func(*Event), opts *SubscribeOptions) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := &proto.Message{Type: proto.CodeSubscribe, URI: []byte(topic)}
	o := newOptions(s.ser, nil)
	if opts != nil {
		o.extra = opts.Options
		if opts.Match != "" {
			o.setString(proto.KeyMatch, opts.Match)
		}
		if opts.GetRetained {
			o.setBool(proto.KeyGetRetained, true)
		}
	}
	if err := o.apply(m); err != nil {
		return nil, err
	}
	rq := newRequest(proto.CodeSubscribe)
	rq.topic, rq.match = topic, matchOf(opts)
	if h == nil {
		// A subscription held without a handler (edge's tests hold
		// topics so): its events are dropped. Called, a nil h panicked
		// at every event, each logged at ERROR with its stack, at the
		// publishers' rate.
		h = func(*Event) {}
	}
	rq.sub = &Subscription{s: s, topic: topic, h: h, match: rq.match}
	id, err := s.addRequest(rq)
	if err != nil {
		return nil, err
	}
	if _, err := s.roundTrip(ctx, m, id, rq); err != nil {
		return nil, err
	}
	return rq.sub, nil
}

// matchOf is the match policy a SUBSCRIBE with opts asks for.
func matchOf(opts *SubscribeOptions) string {
	match := ""
	if opts != nil {
		match = opts.Match
		if m, ok := opts.Options[proto.KeyMatch.Name()].(string); ok {
			match = m
		}
	}
	if match == "" {
		return proto.MatchExact.String()
	}
	return match
}

// Unsubscribe removes sub; its handler is not started again once
// Unsubscribe is called. When sub is the session's last subscription with
// its id, UNSUBSCRIBE is sent and Unsubscribe waits for UNSUBSCRIBED. A
// Subscribe to the same topic that the router answered before it
// processed the UNSUBSCRIBE shares the id and is dropped by the router
// with it: that Subscription then reports Active false, as when revoked.
// When ctx has already ended nothing is done and ctx.Err() is returned.
//
// [UNSUBSCRIBE, Request|id, SUBSCRIBED.Subscription|id]
func (s *Session) Unsubscribe(ctx context.Context, sub *Subscription) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	wait, err := s.startUnsubscribe(sub)
	if err != nil {
		return err
	}
	return wait(ctx)
}

// startUnsubscribe takes sub off the session and, when it was the last
// under its id, sends UNSUBSCRIBE, whatever a context says (as
// startUnregister); wait waits for UNSUBSCRIBED.
func (s *Session) startUnsubscribe(sub *Subscription) (wait func(context.Context) error, err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return nil, s.lost
	}
	list := s.subs[sub.id]
	i := 0
	for i < len(list) && list[i] != sub {
		i++
	}
	if i == len(list) {
		s.mu.Unlock()
		return nil, ErrNotSubscribed
	}
	sub.active.Store(false)
	rest := make([]*Subscription, 0, len(list)-1)
	rest = append(append(rest, list[:i]...), list[i+1:]...)
	if len(rest) > 0 {
		s.subs[sub.id] = rest
		s.mu.Unlock()
		return func(context.Context) error { return nil }, nil
	}
	delete(s.subs, sub.id)
	rq := newRequest(proto.CodeUnsubscribe)
	rq.subID = sub.id
	id := s.addRequestLocked(rq)
	s.mu.Unlock()
	if err := s.sendRequest(context.Background(), &proto.Message{Type: proto.CodeUnsubscribe, ID: sub.id}, id, rq); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		_, err := s.awaitReply(ctx, id, rq)
		return err
	}, nil
}

// onEvent queues an EVENT for each local subscription of its id. It
// blocks while the queue is full (backpressure: the reader stops reading,
// so the router sees a slow consumer), unless Close was called, and returns
// false if the session ended meanwhile.
//
// [EVENT, SUBSCRIBED.Subscription|id, PUBLISHED.Publication|id, Details|dict, Arguments|list, ArgumentsKw|dict]
func (s *Session) onEvent(m *proto.Message) bool {
	s.mu.Lock()
	subs := s.subs[m.ID]
	s.mu.Unlock()
	if len(subs) == 0 {
		return true // unsubscribed meanwhile
	}
	budget := measuredBudget(s.decodeBudget(s.inLen))
	start := *budget
	args, kwargs, err := s.payloadOf(m, budget)
	if err != nil {
		if ok, held := s.dropLog.allow(nanos(s.cfg.now)); ok {
			s.log.Warn("client: dropping an undecodable event (at most one line per 10 s)", "subscription", m.ID, "size", s.inLen, "error", err, "dropped_since_last_line", held)
		}
		return true
	}
	details, dcost := s.dictOfCost(m.Dict)
	// What the queue holds of the event is its decoded values (the
	// message's buffers go once it is handled): counted in Go values, as
	// the decode budget estimates them, or as received when that is
	// more. As received, small MsgPack integers, 16 times their size
	// decoded, held 16 times MaxBacklog behind a slow handler. The Event
	// holding them counts too (heldEvent).
	decoded := start - *budget + dcost
	ev := &Event{
		Args:           args,
		Kwargs:         kwargs,
		Details:        details,
		Topic:          m.Opt.String(proto.KeyTopic),
		Publisher:      m.Opt.Uint(proto.KeyPublisher),
		Retained:       m.Opt.Bool(proto.KeyRetained, false),
		SubscriptionID: m.ID,
		PublicationID:  m.ID2,
	}
	if ev.Topic == "" {
		ev.Topic = subs[0].topic
	} else {
		decoded += len(ev.Topic)
	}
	size := max(s.inLen, decoded+heldEvent)
	for i, sub := range subs {
		d := delivery{sub: sub, ev: ev}
		if i == 0 {
			d.size = size // the event is shared: counted once
		}
		if s.roomFor(d.size) {
			s.evBytes.Add(int64(d.size))
			select {
			case s.evq <- d:
				continue
			default:
			}
			s.evBytes.Add(-int64(d.size))
		}
		if !s.waitQueue(d) {
			return false
		}
	}
	return true
}

// roomFor reports whether an event of n bytes fits in the queue's byte
// bound (Config.MaxBacklog): one is always taken when none is held.
func (s *Session) roomFor(n int) bool {
	held := s.evBytes.Load()
	return s.cfg.MaxBacklog <= 0 || n == 0 || held <= 0 || held+int64(n) <= int64(s.cfg.MaxBacklog) ||
		s.dispatcherWaits.Load() > 0
}

// holdRoom is called by a wait for a reply of s. When it runs on s's
// dispatcher, in an event handler (a handler's Call, acknowledged
// Publish, Subscribe...), the reader must go on reading for the reply:
// until release is called, the event queue is bounded by its count
// only (Config.EventQueue), as before it was bounded by bytes too, and a
// reader waiting for room by bytes is woken. By bytes alone, a few large
// events behind such a handler stopped the reader, the reply unread: with
// 6 MiB events, the third one stalled the handler until its context
// ended. The stack is looked at only while a handler of s runs, and the
// goroutine's id only when the stack holds a dispatcher: every session's
// handlers have that frame, and a request of s from another session's
// handler (a bridge passing that session's events on through s) lifted
// s's byte bound for as long as it waited.
func (s *Session) holdRoom() (release func()) {
	if !s.dispatching.Load() || !onStack(dispatchName) || goid() != s.dispatcher.Load() {
		return func() {}
	}
	s.dispatcherWaits.Add(1)
	select {
	case s.evRoom <- struct{}{}:
	default:
	}
	return func() { s.dispatcherWaits.Add(-1) }
}

// dispatchName is dispatch's function name, as runtime.Frame reports it.
var dispatchName = runtime.FuncForPC(reflect.ValueOf((*Session).dispatch).Pointer()).Name()

// waitQueue queues d in a full event queue (by count, or by bytes:
// Config.MaxBacklog), waiting for room, unless
// Close was called (d is dropped). It returns false if the session ended
// meanwhile. The keepalive pauses while the reader waits here (it reads
// nothing, so silence would mean nothing).
func (s *Session) waitQueue(d delivery) bool {
	s.parked.Store(true)
	select {
	case s.full <- struct{}{}:
	default:
	}
	defer func() {
		s.resumed.Store(nanos(s.cfg.now))
		s.parked.Store(false)
	}()
	for {
		var evq chan delivery // nil (no room by bytes): wait for the dispatcher
		if s.roomFor(d.size) {
			evq = s.evq
			s.evBytes.Add(int64(d.size))
		}
		queued, stop, ok := false, false, true
		select {
		case evq <- d:
			queued, stop = true, true
		case <-s.evRoom:
		case <-s.closing:
			stop = true // dropped: Close was called
		case <-s.done:
			stop, ok = true, false
		}
		if evq != nil && !queued {
			s.evBytes.Add(-int64(d.size))
		}
		if stop {
			return ok
		}
	}
}

// dispatch is the session's event dispatcher goroutine: it runs event
// handlers one at a time, in queue order, until the session ends. Events
// still queued when Close is called or the session ends are dropped.
func (s *Session) dispatch() {
	defer s.wg.Done()
	s.dispatcher.Store(goid()) // before dispatching is first set (holdRoom)
	for {
		select {
		case d := <-s.evq:
			select {
			case <-s.done:
				return
			case <-s.closing:
				s.handled(d) // dropped: Close was called
				continue
			default:
			}
			if d.sub.active.Load() {
				s.dispatching.Store(true)
				s.deliver(d)
				s.dispatching.Store(false)
			}
			s.handled(d)
		case <-s.done:
			return
		}
	}
}

// handled gives back the bytes of a delivery off the queue, and wakes
// a reader waiting for them (waitQueue).
func (s *Session) handled(d delivery) {
	if d.size > 0 {
		s.evBytes.Add(-int64(d.size))
		select {
		case s.evRoom <- struct{}{}:
		default:
		}
	}
}

func (s *Session) deliver(d delivery) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("client: event handler panic", "topic", d.sub.topic, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	d.sub.h(d.ev)
}
