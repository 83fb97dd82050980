package gateway

import (
	"bytes"
	"context"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// routeStats is a StatsSource over the router's own read paths (cmd's
// adds the loops' counters).
type routeStats struct{ r *route.Router }

func (s routeStats) Stats(ctx context.Context) (*Stats, error) {
	tr, err := s.r.Traffic(ctx)
	if err != nil {
		return nil, err
	}
	st := &Stats{MessagesIn: map[string]uint64{}, MessagesOut: map[string]uint64{},
		BytesIn: Counter{tr.BytesIn, true}, BytesOut: Counter{tr.BytesOut, true}, CallsInFlight: Gauge{float64(tr.CallsInFlight), true}}
	for c, n := range tr.In {
		st.MessagesIn[c.String()] = n
	}
	for c, n := range tr.Out {
		st.MessagesOut[c.String()] = n
	}
	h := &Histogram{Counts: tr.CallLatency[:], Sum: tr.CallLatencySum.Seconds()}
	for _, b := range route.CallLatencyBounds {
		h.Bounds = append(h.Bounds, b.Seconds())
	}
	st.CallDuration = h
	for _, rs := range s.r.SessionsByRealm() {
		for tp, n := range rs.ByTransport {
			st.Sessions = append(st.Sessions, SessionCount{Realm: rs.Realm, Transport: tp, N: n})
		}
	}
	return st, nil
}

// scrape fetches /metrics and parses it as Prometheus does.
func (e *env) scrape() map[string]*dto.MetricFamily {
	e.t.Helper()
	r, body := e.do("GET", "/metrics", "")
	if r.StatusCode != 200 {
		e.t.Fatalf("metrics: %d %s", r.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// value returns the value of the sample of family name with the given
// labels (name=value pairs), or -1.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}

// TestMetricsMatchTraffic: after known traffic, the scraped figures are
// that traffic.
func TestMetricsMatchTraffic(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Stats = routeStats{o.Router} })
	callee := e.dial("realm1", proto.MsgPack)
	e.register(callee, "com.add", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{1}}, nil
	})
	before := e.scrape()
	const calls, misses, pubs = 140, 3, 4
	for i := 0; i < calls; i++ {
		if r, body := e.do("POST", "/wamp/realm1/call/com.add", `{"args":[1,2]}`); r.StatusCode != 200 {
			t.Fatalf("call: %d %s", r.StatusCode, body)
		}
	}
	for i := 0; i < misses; i++ {
		e.do("POST", "/wamp/realm1/call/com.none", `{}`)
	}
	for i := 0; i < pubs; i++ {
		e.do("POST", "/wamp/realm1/publish/com.t", `{"args":[1]}`)
	}
	e.do("POST", "/wamp/realm1/call/com.add", `{"args":`) // 400
	after := e.scrape()
	d := func(name string, labels ...string) float64 {
		b := value(before, name, labels...)
		if b < 0 {
			b = 0
		}
		return value(after, name, labels...) - b
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"edgewamp_gateway_requests_total", []string{"route", "bridge_call", "code", "200"}, calls},
		{"edgewamp_gateway_requests_total", []string{"route", "bridge_call", "code", "404"}, misses},
		{"edgewamp_gateway_requests_total", []string{"route", "bridge_call", "code", "400"}, 1},
		{"edgewamp_gateway_requests_total", []string{"route", "bridge_publish", "code", "202"}, pubs},
		{"edgewamp_gateway_request_duration_seconds", []string{"route", "bridge_call"}, calls + misses + 1},
		{"edgewamp_messages_received_total", []string{"type", "CALL"}, calls + misses},
		{"edgewamp_messages_received_total", []string{"type", "YIELD"}, calls},
		{"edgewamp_messages_received_total", []string{"type", "PUBLISH"}, pubs},
		{"edgewamp_messages_sent_total", []string{"type", "INVOCATION"}, calls},
		{"edgewamp_messages_sent_total", []string{"type", "RESULT"}, calls},
		{"edgewamp_messages_sent_total", []string{"type", "PUBLISHED"}, pubs},
	}
	for _, c := range checks {
		if got := d(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v: +%v, want +%v", c.name, c.labels, got, c.want)
		}
	}
	// One call in 64 per shard is timed: the 140 calls, spread over the two
	// shards by the gateway, give two samples.
	if n := d("edgewamp_call_duration_seconds"); n < 1 || n > 3 {
		t.Errorf("call duration samples +%v, want 1 or 2 for %d calls", n, calls)
	}
	if v := value(after, "edgewamp_calls_in_flight"); v != 0 {
		t.Errorf("calls in flight %v, want 0", v)
	}
	// Sessions: the WAMP callee (websocket) and the gateway's own (http).
	if v := value(after, "edgewamp_sessions", "realm", "realm1", "transport", "websocket"); v != 1 {
		t.Errorf("websocket sessions %v, want 1", v)
	}
	if v := value(after, "edgewamp_sessions", "realm", "realm1", "transport", "http"); v < 1 {
		t.Errorf("http sessions %v, want at least 1", v)
	}
	if value(after, "go_goroutines") <= 0 || value(after, "process_resident_memory_bytes") <= 0 {
		t.Error("no Go runtime or process metrics")
	}
	// No URI and no session id as a label value.
	for name, f := range after {
		for _, m := range f.Metric {
			for _, lp := range m.Label {
				if strings.Contains(lp.GetValue(), "com.") {
					t.Errorf("%s has a URI label %s=%s", name, lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	// The in-flight gauge sees a call in progress.
	block := make(chan struct{})
	e.register(callee, "com.block", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		<-block
		return &client.Result{}, nil
	})
	done := make(chan struct{})
	go func() { e.do("POST", "/wamp/realm1/call/com.block", `{}`); close(done) }()
	waitFor(t, "the call in flight", func() bool { return value(e.scrape(), "edgewamp_calls_in_flight") == 1 })
	if v := value(e.scrape(), "edgewamp_gateway_requests_in_flight"); v != 1 {
		t.Errorf("gateway requests in flight %v", v)
	}
	close(block)
	<-done
	// OpenMetrics when asked.
	r, body := e.do("GET", "/metrics", "", "Accept", "application/openmetrics-text; version=1.0.0")
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/openmetrics-text") || !bytes.HasSuffix(body, []byte("# EOF\n")) {
		t.Fatalf("OpenMetrics: %s", r.Header.Get("Content-Type"))
	}
}
