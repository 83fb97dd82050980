package client

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A subscription made with a nil event handler (edge's tests hold topics
// so) panicked at every event, each panic recovered and logged at ERROR
// with its stack: a log line of kilobytes per event, at the publishers'
// rate. Its events are dropped, as a Client's are.
func TestNilEventHandlerDropsEvents(t *testing.T) {
	var logs lockedBuf
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))
	})
	subscribe(t, s, c, "com.example.held", 9, nil, nil)
	got := make(chan *Event, 1)
	subscribe(t, s, c, "com.example.t", 10, func(ev *Event) { got <- ev }, nil)
	for i := range 20 {
		c.send(event(c, 9, uint64(i+1), []any{i}, map[string]any{}))
	}
	c.send(event(c, 10, 100, []any{"last"}, map[string]any{})) // handled after the 20
	select {
	case <-got:
	case <-time.After(wait):
		t.Fatal("the event behind them did not arrive")
	}
	if n := strings.Count(logs.String(), "panic"); n > 0 {
		t.Fatalf("%q %d times in the ERROR log after 20 events to a subscription with a nil handler", "panic", n)
	}
}
