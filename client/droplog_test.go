package client

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A received EVENT over the decode budget is dropped and logged at WARN,
// and so are Details over theirs: one line per message. A publisher (not
// only a hostile router: edgewamp passes payloads through) sending small
// events of tiny containers made every subscriber write a WARN line per
// event, as fast as it published: 100 events of 8 KiB, 100 lines. The
// lines are rate-limited (one per 10 s, telling how many were dropped
// since the last); what is dropped is unchanged.
func TestDroppedEventsLogRateLimited(t *testing.T) {
	url := startRouter(t)
	var logs lockedBuf
	sub, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	noErr(t, "Dial subscriber", err)
	t.Cleanup(func() { sub.Close() })
	pub := dialRouter(t, url)
	ctx := context.Background()
	got := make(chan *Event, 1)
	_, err = sub.Subscribe(ctx, "com.example.t", func(ev *Event) {
		select {
		case got <- ev:
		default:
		}
	}, nil)
	noErr(t, "Subscribe", err)

	const events = 100
	bad := emptyMaps(8 << 10) // 8 KiB that take 512 KiB decoded: over 16 × 8 KiB + 64 KiB
	for i := range events {
		m := &proto.Message{Type: proto.CodePublish, Request: uint64(1000 + i), URI: []byte("com.example.t"), Args: bad}
		noErr(t, "PUBLISH", pub.SendRaw(m))
	}
	// One ordinary event behind them: once it is in, all were read.
	noErr(t, "Publish", pub.Publish(ctx, "com.example.t", []any{"ok"}, nil, &PublishOptions{Acknowledge: true}))
	select {
	case ev := <-got:
		eq(t, "event", ev.Args, []any{"ok"})
	case <-time.After(wait):
		t.Fatal("the ordinary event did not arrive")
	}
	if n := strings.Count(logs.String(), "undecodable event"); n == 0 || n > 2 {
		t.Fatalf("%d WARN lines for %d dropped events, want one (rate-limited)", n, events)
	}
}

// The same for Details over their budget, from a hostile router: 100
// EVENTs whose Details take 64 times their size decoded wrote 100 lines.
func TestDroppedDetailsLogRateLimited(t *testing.T) {
	var logs lockedBuf
	s, c := setup(t, "rs", proto.MsgPack, func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	got := make(chan *Event, 128)
	subscribe(t, s, c, "com.example.t", 9, func(ev *Event) { got <- ev }, nil)
	const events = 100
	for i := range events {
		c.send(&proto.Message{Type: proto.CodeEvent, ID: 9, ID2: uint64(i + 1), Dict: bigDetails(8 << 10), Args: c.raw([]any{i})})
	}
	for i := range events {
		select {
		case ev := <-got:
			eq(t, "event", ev.Args, []any{int64(i)})
			if ev.Details != nil {
				t.Fatal("Details over the decode budget decoded")
			}
		case <-time.After(wait):
			t.Fatalf("%d of %d events arrived", i, events)
		}
	}
	if n := strings.Count(logs.String(), "Details over the decode budget"); n != 1 {
		t.Fatalf("%d WARN lines for %d messages with Details over the budget, want one (rate-limited)", n, events)
	}
}
