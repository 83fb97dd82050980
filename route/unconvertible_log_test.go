package route_test

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A publication whose payload has no form in a subscriber's serializer
// (a CBOR NaN or infinity for a JSON subscriber) reaches the subscribers
// that can carry it and is dropped for the others. The publisher's
// acknowledged PUBLISH gets PUBLISHED (the router took the publication;
// the subscribers on other event loops and nodes get it after that
// answer, as with a slow subscriber's drop), and the drop was counted
// only (edgewamp_events_dropped_total{reason="not_convertible"}): the
// operator had no line saying which publisher's events JSON subscribers
// stopped getting. Now the first such drop of a publishing session is
// logged at WARN, naming the realm, the topic, the publisher and the
// serializer, and the transcoder's reason; its later ones are counted
// only. Over real sockets, with the Go client.
func TestUnconvertibleEventLogged(t *testing.T) {
	addr, log := startLoggedLoops(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(ser proto.Serializer) *client.Session {
		s, err := client.Dial(ctx, client.Config{URL: "ws://" + addr + "/ws", Realm: "realm1", Serializer: ser})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	got := map[proto.Serializer]chan *client.Event{}
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack} {
		ch := make(chan *client.Event, 16)
		got[ser] = ch
		if _, err := dial(ser).Subscribe(ctx, "com.sensor.t", func(ev *client.Event) { ch <- ev }, nil); err != nil {
			t.Fatal(err)
		}
	}
	pub := dial(proto.CBOR)
	ack := &client.PublishOptions{Acknowledge: true}
	for i, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if err := pub.Publish(ctx, "com.sensor.t", []any{v}, nil, ack); err != nil {
			t.Fatalf("publication %d: %v", i, err)
		}
		select {
		case ev := <-got[proto.MsgPack]:
			if f, ok := ev.Args[0].(float64); !ok || !(math.IsNaN(f) && math.IsNaN(v) || f == v) {
				t.Fatalf("MsgPack subscriber got %v, want %v", ev.Args, v)
			}
		case <-ctx.Done():
			t.Fatalf("publication %d: the MsgPack subscriber got nothing", i)
		}
	}
	// A plain event after them: the JSON subscriber, still there, got
	// none of the three.
	if err := pub.Publish(ctx, "com.sensor.t", []any{1.5}, nil, ack); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got[proto.JSON]:
		if f, _ := ev.Args[0].(float64); f != 1.5 {
			t.Fatalf("JSON subscriber got %v first, want [1.5] (no form in JSON for the three before)", ev.Args)
		}
	case <-ctx.Done():
		t.Fatal("the JSON subscriber got nothing")
	}
	var lines []string
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "not delivered") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d log lines for three events dropped for the JSON subscriber, want 1 (once per publishing session); log:\n%s", len(lines), log.String())
	}
	t.Log(lines[0])
	for _, want := range []string{"level=WARN", "realm=realm1", "topic=com.sensor.t", "serializer=json", "publisher=" + strconv.FormatUint(pub.ID(), 10), "NaN", "not_convertible"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %q", lines[0], want)
		}
	}
}

// A retained event no longer has its publishing session (it outlives it),
// nor has an event from another node: their drops for a serializer are
// logged at most once per 10 s, router-wide, so that a JSON client
// subscribing again and again with get_retained to a topic whose
// retained value is a NaN does not write a line each time.
func TestUnconvertibleRetainedEventLoggedSpaced(t *testing.T) {
	addr, log := startLoggedLoops(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(ser proto.Serializer) *client.Session {
		s, err := client.Dial(ctx, client.Config{URL: "ws://" + addr + "/ws", Realm: "realm1", Serializer: ser})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	pub := dial(proto.CBOR)
	if err := pub.Publish(ctx, "com.sensor.t", []any{math.NaN()}, nil, &client.PublishOptions{Acknowledge: true, Retain: true}); err != nil {
		t.Fatal(err)
	}
	mp := dial(proto.MsgPack)
	got := make(chan *client.Event, 4)
	if _, err := mp.Subscribe(ctx, "com.sensor.t", func(ev *client.Event) { got <- ev }, &client.SubscribeOptions{GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("the MsgPack subscriber got no retained event")
	}
	js := dial(proto.JSON)
	for range 3 {
		sub, err := js.Subscribe(ctx, "com.sensor.t", func(ev *client.Event) { t.Errorf("JSON subscriber got %v", ev.Args) }, &client.SubscribeOptions{GetRetained: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := js.Unsubscribe(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	// The retained event goes after SUBSCRIBED: the line may come later.
	var lines []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		lines = lines[:0]
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, "not delivered") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d log lines for a retained event dropped three times for a JSON subscriber, want 1 (at most once per 10 s); log:\n%s", len(lines), log.String())
	}
	for _, want := range []string{"level=WARN", "topic=com.sensor.t", "serializer=json", "retained=true", "publisher=" + strconv.FormatUint(pub.ID(), 10)} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %q", lines[0], want)
		}
	}
}

// The once-per-publishing-session drop line is bounded router-wide too: a
// client looping connect, publish an unconvertible (or, over RawSocket,
// too big) event, leave wrote a WARN of ~700 B a session without end. At
// most 10 such lines a 10 s window are written (the test may straddle
// two windows: 20), the rest counted for the next line.
func TestUnconvertibleEventLogBoundedRouterWide(t *testing.T) {
	addr, log := startLoggedLoops(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(ser proto.Serializer) *client.Session {
		s, err := client.Dial(ctx, client.Config{URL: "ws://" + addr + "/ws", Realm: "realm1", Serializer: ser})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sub := dial(proto.JSON)
	defer sub.Close()
	if _, err := sub.Subscribe(ctx, "com.sensor.t", func(*client.Event) {}, nil); err != nil {
		t.Fatal(err)
	}
	const sessions = 25
	ack := &client.PublishOptions{Acknowledge: true}
	for i := 0; i < sessions; i++ {
		pub := dial(proto.CBOR)
		if err := pub.Publish(ctx, "com.sensor.t", []any{math.NaN()}, nil, ack); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		pub.Close()
	}
	// The drop is decided on the subscriber's loop, after PUBLISHED: a
	// plain event after them, received, comes after the last drop.
	pub := dial(proto.CBOR)
	defer pub.Close()
	got := make(chan struct{}, 1)
	sub2 := dial(proto.JSON)
	defer sub2.Close()
	if _, err := sub2.Subscribe(ctx, "com.sensor.end", func(*client.Event) { got <- struct{}{} }, nil); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "com.sensor.end", []any{1}, nil, ack); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("no end event")
	}
	time.Sleep(100 * time.Millisecond)
	n := strings.Count(log.String(), "not delivered")
	t.Logf("%d drop lines for %d publishing sessions", n, sessions)
	if n == 0 || n > 2*10 {
		t.Fatalf("%d drop lines for %d publishing sessions, want 1 to 20 (10 a 10 s window)", n, sessions)
	}
}
