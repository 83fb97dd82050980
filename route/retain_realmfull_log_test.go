package route_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A retained event past the realm's bound (limits.retained_bytes, or its
// 65,536 topics) is delivered but not kept, and its topic's older retained
// event is dropped with it: the publisher's acknowledged PUBLISH says
// nothing of it, and the operator was told nothing either. Only the
// publisher's share had a log line (retainRefused); the realm's bound was
// counted in edgewamp_retain_refused_total{reason="realm_full"} alone, so a
// realm whose retained events had silently stopped being kept (a device's
// last state gone after its next publication) left no trace in the log.
// Now the first such refusal of a session is logged (WARN, once per
// session, as the publisher's share is), naming the realm, the topic and
// the bound. Over a real socket, with the Go client.
func TestRetainRealmFullLogged(t *testing.T) {
	log := &syncBuf{}
	lg := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 1, Logger: lg,
		MaxRetainedBytes: 8 << 10, MaxRetainedPerPublisher: -1, MaxRetainedBytesPerPublisher: -1})
	if err != nil {
		t.Fatal(err)
	}
	e, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: "ws://" + e.Addrs()[0].String() + "/ws", Realm: "realm1", Serializer: proto.JSON})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opts := &client.PublishOptions{Retain: true, Acknowledge: true}
	if err := s.Publish(ctx, "com.state.a", []any{"small"}, nil, opts); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("b", 16<<10) // past the realm's 8 KiB
	for _, topic := range []string{"com.state.a", "com.state.b", "com.state.c"} {
		if err := s.Publish(ctx, topic, []any{big}, nil, opts); err != nil {
			t.Fatalf("%s: %v (a retained event past the bound is still published)", topic, err)
		}
	}
	if n := r.Stats().RetainRefused; n != 3 {
		t.Fatalf("RetainRefused %d, want 3", n)
	}
	var lines []string
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "retained event delivered but not kept") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d log lines for three retained events refused for the realm's bound, want 1 (once per session); log:\n%s", len(lines), log.String())
	}
	for _, want := range []string{"level=WARN", "limits.retained_bytes", "realm=realm1", "topic=com.state.a", "max_bytes=8192"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %q", lines[0], want)
		}
	}
}
