package edge

import (
	"bytes"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// lockedLog is a log sink a node's goroutines and the test share.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedLog) lines(sub string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, l := range strings.Split(w.b.String(), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// A node keeps copies of the retained events other nodes publish (for
// its get_retained subscribers); past its realm's bound
// (limits.retained_bytes, or its topics) a copy is delivered but not kept.
// That was counted (edgewamp_retain_refused_total{reason="realm_full"})
// and never logged, where the same refusal of a local publisher's event
// is logged: an operator whose node, configured with a smaller bound than
// its peers, had stopped keeping their devices' last values found nothing
// in its log. Now it is logged at WARN, at most once per 10 s (no local
// session to log once for), naming the realm, the topic, the publisher
// and the bound. Two real nodes over embedded NATS, the Go client.
func TestMeshRetainedRealmFullLogged(t *testing.T) {
	t.Parallel()
	logB := &lockedLog{}
	ports := []string{edgetest.FreeAddr(t), edgetest.FreeAddr(t)}
	start := func(i int, name string, conf func(*route.Config)) *tnode {
		return startNodeConf(t, name, conf, func(o *Options) {
			o.Cluster.Listen = ports[i]
			o.Cluster.Routes = []string{"nats://" + ports[1-i]}
		})
	}
	a := start(0, "a", nil)
	b := start(1, "b", func(c *route.Config) {
		c.MaxRetainedBytes, c.MaxRetainedPerPublisher, c.MaxRetainedBytesPerPublisher = 8<<10, -1, -1
		c.Logger = slog.New(slog.NewTextHandler(logB, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	waitMesh(t, a, b)
	ctx := ctxT(t, 30*time.Second)
	got := make(chan *client.Event, 16)
	watcher := b.dial(b.ws(), proto.JSON) // b's interest: it keeps copies
	if _, err := watcher.Subscribe(ctx, "com.state.", func(ev *client.Event) { got <- ev }, &client.SubscribeOptions{Match: "prefix"}); err != nil {
		t.Fatal(err)
	}
	pub := a.dial(a.ws(), proto.JSON)
	opts := &client.PublishOptions{Retain: true, Acknowledge: true}
	big := strings.Repeat("b", 16<<10) // past b's 8 KiB, within a's 64 MiB
	for _, topic := range []string{"com.state.a", "com.state.b", "com.state.c"} {
		// Until b's interest has reached a, a publishes to no one.
		eventually(t, 15*time.Second, func() error {
			if err := pub.Publish(ctx, topic, []any{big}, nil, opts); err != nil {
				t.Fatal(err)
			}
			select {
			case <-got:
				return nil
			case <-time.After(200 * time.Millisecond):
				return errNoEvent
			}
		})
	}
	if n := b.r.Stats().RetainRefused; n < 3 {
		t.Fatalf("b refused %d copies, want 3 at least", n)
	}
	lines := logB.lines("not kept")
	if len(lines) != 1 {
		t.Fatalf("%d log lines on b for the copies it refused, want 1 (at most once per 10 s); b's log:\n%s", len(lines), strings.Join(logB.lines(""), "\n"))
	}
	for _, want := range []string{"level=WARN", "limits.retained_bytes", "realm=realm1", "topic=com.state.a", "max_bytes=8192", "publisher=" + strconv.FormatUint(pub.ID(), 10)} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %q", lines[0], want)
		}
	}
}

var errNoEvent = errors.New("no event yet")
