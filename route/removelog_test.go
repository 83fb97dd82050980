package route_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A removal refused for the bound of removals waiting for a busy loop,
// or its caller's share of it (a meta remove_subscriber or remove_callee,
// a force_reregister's removals of the callees it replaces), is logged at
// WARN once per session, naming the caller and its owner, as the
// router's other bounds are. Before, only the caller was told: the
// router's operator had no line of one client filling its quarter of a
// loop's removals, nor of a REGISTER refused for them.
func TestRemovalRefusalLogged(t *testing.T) {
	log := &syncBuf{}
	lg := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	lr, dial := startAuthLoopsWith(t, func(c *route.Config) { c.Logger = lg })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mallory := dial("a", "mallory", 0)
	svc2 := dial("a", "svc", 0)
	own := dial("a", "mallory", 1)
	const entries = 1000
	var subIDs []uint64
	for i := range entries {
		sub, err := own.Subscribe(ctx, "com.example.sub"+strconv.Itoa(i), func(*client.Event) {}, nil)
		if err != nil {
			t.Fatal(err)
		}
		subIDs = append(subIDs, sub.ID())
	}
	// Callees of one procedure on loop 1, whose replacement posts a
	// removal there for each.
	for range 8 {
		c := dial("a", "svc", 1)
		if _, err := c.Register(ctx, "com.example.pool", func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{}, nil
		}, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
			t.Fatal(err)
		}
	}
	svc := dial("a", "svc", 0)

	release := lr.stall(1)
	defer release()
	reason := "com." + strings.Repeat("r", 4000)
	// mallory, then svc2, each past its authid's quarter of loop 1's
	// removals.
	refused := map[*client.Session]int{}
	for i, id := range subIDs {
		who := mallory
		if i >= entries/2 {
			who = svc2
		}
		_, err := who.Call(ctx, "wamp.subscription.remove_subscriber", []any{id, own.ID(), reason}, nil, nil)
		var we *client.Error
		switch {
		case err == nil:
		case errors.As(err, &we) && we.URI == proto.URIUnavailable:
			refused[who]++
		default:
			t.Fatalf("removal: %v", err)
		}
	}
	if refused[mallory] < 2 || refused[svc2] < 2 {
		t.Fatalf("removals with a 4 KB reason refused on the busy loop: %d of mallory's, %d of svc2's, want more than one each", refused[mallory], refused[svc2])
	}
	t.Logf("refused on the busy loop: %d of mallory's %d removals, %d of svc2's", refused[mallory], entries/2, refused[svc2])
	// svc's authid's quarter is full (svc2's): the REGISTER with
	// force_reregister of the pool is refused for the removals it would post.
	_, err := svc.Register(ctx, "com.example.pool", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	}, &client.RegisterOptions{Invoke: "roundrobin", Options: map[string]any{"force_reregister": true}})
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URIUnavailable {
		t.Fatalf("the force_reregister with its authid's quarter of the loop's removals full: %v, want %s", err, proto.URIUnavailable)
	}

	var lines []string
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "removals") {
			lines = append(lines, l)
		}
	}
	for _, w := range []struct {
		who    string
		s      *client.Session
		authid string
		what   string
	}{
		{"mallory's remove_subscriber", mallory, "mallory", "remove"},
		{"svc2's remove_subscriber", svc2, "svc", "remove"},
		{"svc's force_reregister", svc, "svc", "force_reregister"},
	} {
		n := 0
		for _, l := range lines {
			if !strings.Contains(l, "session="+strconv.FormatUint(w.s.ID(), 10)+" ") {
				continue
			}
			n++
			if !strings.Contains(l, "authid="+w.authid) || !strings.Contains(l, `owner="realm \"a\" authid `+w.authid+`"`) || !strings.Contains(l, w.what) {
				t.Errorf("%s: its line does not name the authid %s, its owner and %s: %s", w.who, w.authid, w.what, l)
			}
		}
		if n != 1 {
			t.Errorf("%s refused: %d WARN lines for its session, want 1", w.who, n)
		}
	}
	if t.Failed() {
		t.Logf("the log's WARN lines about removals:\n%s", strings.Join(lines, "\n"))
	}
}
