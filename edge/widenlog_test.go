package edge

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// lineCounter counts the log records whose message starts with prefix.
type lineCounter struct {
	prefix string
	n      *atomic.Int64
}

func (c lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c lineCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, c.prefix) {
		c.n.Add(1)
	}
	return nil
}
func (c lineCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c lineCounter) WithGroup(string) slog.Handler      { return c }

// A node past mesh.max_interest in a realm widens to one subscription for
// the realm, and narrows again at half; each change wrote a log line, on
// the loop of the SUBSCRIBE or UNSUBSCRIBE that made it and under the
// node's interest lock: one session subscribing to a few topics past the
// bound and leaving them again, over and over, wrote two lines per round
// (at the default bound and 4 KiB topics, a round is 513 SUBSCRIBEs and
// 257 UNSUBSCRIBEs: hundreds of lines a second). Now the node logs such
// changes at most once per 10 s, with the number since the last line, and
// a line sums up those it did not log when the 10 s are over.
func TestInterestFlapsLogRateLimited(t *testing.T) {
	var lines atomic.Int64
	tn := startNode(t, "wl", func(o *Options) {
		o.Cluster.Listen = edgetest.FreeAddr(t) // a mesh of one
		o.MaxInterest = 4
		o.Logger = slog.New(lineCounter{prefix: "mesh: this node's subscriptions in a realm", n: &lines})
	})
	s := tn.dial(tn.rs(), proto.MsgPack)
	ctx := ctxT(t, 30*time.Second)
	const rounds = 40
	for r := range rounds {
		var subs []*client.Subscription
		for i := range 5 { // past the bound of 4: the realm widens
			sub, err := s.Subscribe(ctx, fmt.Sprintf("flap.t%d", i), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, sub)
		}
		if got := tn.n.Stats().WideRealms.Load(); got != 1 {
			t.Fatalf("round %d: %d wide realms, want 1", r, got)
		}
		for _, sub := range subs[2:] { // down to half: it narrows
			if err := s.Unsubscribe(ctx, sub); err != nil {
				t.Fatal(err)
			}
		}
		if got := tn.n.Stats().WideRealms.Load(); got != 0 {
			t.Fatalf("round %d: %d wide realms, want 0", r, got)
		}
		for _, sub := range subs[:2] {
			if err := s.Unsubscribe(ctx, sub); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := lines.Load(); got > 4 {
		t.Errorf("%d rounds of widening and narrowing wrote %d log lines about it, want at most a few (rate-limited)", rounds, got)
	}
	// The ones not logged are summed up once the wait is over.
	tn.n.imu.Lock()
	armed := tn.n.iSummary != nil
	tn.n.imu.Unlock()
	if !armed {
		t.Errorf("no summary line armed for the unlogged changes")
	}
}
