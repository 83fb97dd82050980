package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// TestMetricsNamedInREADME: every edgewamp_ family a running router's
// GET /metrics exports is named in README, by its whole name in
// backquotes (a label list may follow), and every value of its labels
// is named there: a close reason of edgewamp_connections_closed_total
// and edgewamp_gateway_lane_connections_closed_total in README's list of
// close reasons, a message type (the spec's names) anywhere, the values
// the configuration or the traffic names (namedByConfig) nowhere, any
// other (a reason, result, outcome, method, in, state, path, transport)
// anywhere in backquotes. Scraped from a
// router with the gateway, an HTTP callee, a webhook and an API key, after
// a WAMP session's call and publication (which the webhook's target
// refuses) and a route's request (the families of figures that are only
// exported once they are not zero), and
// from a mesh node of one. Before, nine families
// (edgewamp_gateway_requests_in_flight, _gateway_sessions,
// _gateway_sse_streams, _gateway_sse_buffer_cut_total,
// _connections_refused_total, _inbound_budget_bytes,
// _outbound_budget_bytes, _io_uring_sends_total,
// _io_uring_partial_sends_total) and the close reason http_handoff were
// not named, nor were the HTTP callees' and webhooks' own families,
// edgewamp_gateway_auth_total, or the refusal reasons accept_failed and
// fd_budget; and only reasons were checked: the results of
// edgewamp_mesh_claims_total (provisional, reasserted, swept, refused,
// ...), edgewamp_auth_panics_total's authenticator and authorizer, the
// callees' outcome ok, the TLS handshakes' states and others were not
// named.
func TestMetricsNamedInREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	named, words, closeReasons := readmeMetricNames(t, string(readme))
	plain := map[string]bool{}
	for _, w := range readmePlainWordRE.FindAllString(string(readme), -1) {
		plain[w] = true
	}

	var invoked, posted atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		invoked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`"served"`))
	}))
	t.Cleanup(upstream.Close)
	// The webhook's target refuses its events (400), so that they are
	// dropped as rejected: edgewamp_gateway_webhook_dropped_total.
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posted.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(target.Close)
	file := writeFile(t, "metrics.yaml", fmt.Sprintf(`realms: [{name: realm1}]
gateway:
  listen: 127.0.0.1:0
  api_keys:
    - {name: k, key: k-key-0123456789abcdef, realm: realm1, authid: k, role: user}
  routes:
    - {name: hook, method: POST, path: /hook, realm: realm1, call: com.example.hook, auth: {type: apikey}}
  callees:
    - {name: hook, realm: realm1, procedure: com.example.hook, url: %q}
  webhooks:
    - {name: alert, realm: realm1, topic: com.example.alert, url: %q}
`, upstream.URL, target.URL))

	check := func(t *testing.T, g *gwRouter) {
		t.Helper()
		fams := scrape(t, g)
		var bad []string
		for _, name := range sortedFamilies(fams) {
			if !strings.HasPrefix(name, "edgewamp_") {
				continue
			}
			if !named[name] {
				bad = append(bad, "family "+name+" is not named in README")
			}
			for _, m := range fams[name].Metric {
				for _, lp := range m.Label {
					l, v := lp.GetName(), lp.GetValue()
					switch {
					case namedByConfig[l]:
					case l == "type":
						// The spec's message names, which README writes
						// throughout, in backquotes or not.
						if !plain[v] {
							bad = append(bad, fmt.Sprintf("message type %q of %s is not in README", v, name))
						}
					case l == "reason" && (name == "edgewamp_connections_closed_total" || name == "edgewamp_gateway_lane_connections_closed_total"):
						if !closeReasons[v] {
							bad = append(bad, fmt.Sprintf("close reason %q of %s is not in README's list of close reasons", v, name))
						}
					case !words[v]:
						bad = append(bad, fmt.Sprintf("%s %q of %s is not named in README", l, v, name))
					}
				}
			}
		}
		bad = slices.Compact(bad)
		if len(bad) > 0 {
			t.Errorf("%d names exported on %s/metrics that README does not give:\n%s", len(bad), g.base, strings.Join(bad, "\n"))
		}
	}

	t.Run("single", func(t *testing.T) {
		g := startGatewayRouter(t, "-config", file)
		exercise(t, g, &invoked, &posted)
		check(t, g)
	})
	t.Run("mesh", func(t *testing.T) {
		p := startMeshProc(t, "metricsreadme", "-listen", "127.0.0.1:0", "-cluster-listen", edgetest.FreeAddr(t),
			"-config", file, "-gateway-listen", "127.0.0.1:0")
		g := meshGateway(t, p)
		exercise(t, g, &invoked, &posted)
		check(t, g)
	})
}

// exercise makes g export the families of figures that are exported only
// once they are not zero: a WAMP session (sessions, messages, bytes,
// authentications) that calls the HTTP callee and publishes to the
// webhook, whose target refuses the event, and a request with the API key
// to the route.
func exercise(t *testing.T, g *gwRouter, invoked, posted *atomic.Int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := g.dial("ws://"+g.addr+"/ws", proto.JSON)
	defer s.Close()
	calls, posts := invoked.Load(), posted.Load()
	meshEventually(t, 20*time.Second, func() error {
		_, err := s.Call(ctx, "com.example.hook", nil, nil, nil)
		return err
	})
	if err := s.Publish(ctx, "com.example.alert", []any{1}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	if r, body := g.do(t, "POST", "/hook", "{}", "X-API-Key", "k-key-0123456789abcdef"); r.StatusCode != 200 {
		t.Fatalf("POST /hook: %d %s", r.StatusCode, body)
	}
	meshEventually(t, 20*time.Second, func() error {
		if invoked.Load() < calls+2 || posted.Load() < posts+1 {
			return fmt.Errorf("the upstream served %d calls, the target %d posts", invoked.Load()-calls, posted.Load()-posts)
		}
		if v := metricValue(scrape(t, g), "edgewamp_gateway_webhook_dropped_total", "reason", "rejected"); v < 1 {
			return fmt.Errorf("edgewamp_gateway_webhook_dropped_total{reason=\"rejected\"} = %v", v)
		}
		return nil
	})
}

// namedByConfig are the labels whose values the configuration or the
// traffic name (a route, a callee, a webhook, a realm, a status code, a
// histogram's bucket), which README cannot list; every other label's
// values are the router's own words.
var namedByConfig = map[string]bool{"route": true, "callee": true, "webhook": true, "realm": true, "code": true, "le": true}

var (
	readmeMetricRE = regexp.MustCompile("`(edgewamp_[a-z0-9_]+)(\\{[^`]*\\})?`")
	readmeWordRE   = regexp.MustCompile("`([a-z0-9_]+)`")
	// readmePlainWordRE: README's words, backquoted or not.
	readmePlainWordRE = regexp.MustCompile(`[A-Za-z0-9_]+`)
)

// readmeMetricNames returns the metric families README names whole in
// backquotes, every backquoted word, and the close reasons its list of
// them names (the paragraph "Each connection that closes is logged once").
func readmeMetricNames(t *testing.T, readme string) (families, words, closeReasons map[string]bool) {
	t.Helper()
	families, words, closeReasons = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, m := range readmeMetricRE.FindAllStringSubmatch(readme, -1) {
		families[m[1]] = true
	}
	for _, m := range readmeWordRE.FindAllStringSubmatch(readme, -1) {
		words[m[1]] = true
	}
	i := strings.Index(readme, "Each connection that closes is logged once")
	if i < 0 {
		t.Fatal("README has no list of close reasons")
	}
	para := readme[i:]
	if j := strings.Index(para, "\n\n"); j >= 0 {
		para = para[:j]
	}
	for _, m := range readmeWordRE.FindAllStringSubmatch(para, -1) {
		closeReasons[m[1]] = true
	}
	return families, words, closeReasons
}

func sortedFamilies(fams map[string]*dto.MetricFamily) []string {
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
