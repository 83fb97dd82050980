package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// limits.retained_events_per_publisher reaches the router: an anonymous
// session's retained events past its address's share are published but
// not kept, counted in edgewamp_retain_refused_total{reason=
// "publisher_share"} (the realm's bound, realm_full, untouched), and
// logged once per session.
func TestRetainedShareMetricAndLog(t *testing.T) {
	path := writeFile(t, "share.yaml", "limits: {retained_events_per_publisher: 2}\nrealms: [{name: realm1, anonymous: true}]\n")
	g := startGatewayRouter(t, "-config", path)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	retain := &client.PublishOptions{Acknowledge: true, Retain: true}
	url := "ws://" + g.addr + "/ws"
	first := g.dial(url, proto.JSON)
	defer first.Close()
	for i := range 4 {
		if err := first.Publish(ctx, fmt.Sprintf("com.share.%d", i), []any{i}, nil, retain); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	second := g.dial(url, proto.JSON) // the same address: the same share
	defer second.Close()
	if err := second.Publish(ctx, "com.share.other", []any{"x"}, nil, retain); err != nil {
		t.Fatal(err)
	}
	gw := &gwRouter{router: g.router, base: g.base, hc: &http.Client{Timeout: 10 * time.Second}}
	fams := scrape(t, gw)
	if v := metricValue(fams, "edgewamp_retain_refused_total", "reason", "publisher_share"); v != 3 {
		t.Fatalf("edgewamp_retain_refused_total{reason=\"publisher_share\"} = %v, want 3", v)
	}
	if v := metricValue(fams, "edgewamp_retain_refused_total", "reason", "realm_full"); v != 0 {
		t.Fatalf("edgewamp_retain_refused_total{reason=\"realm_full\"} = %v, want 0", v)
	}
	meshEventually(t, 5*time.Second, func() error {
		if n := strings.Count(g.logs(), "its publisher's share of the realm's retained events is used up"); n != 2 {
			return fmt.Errorf("%d log lines about the publisher's share, want 2 (one per session)\n%s", n, g.logs())
		}
		return nil
	})
}
