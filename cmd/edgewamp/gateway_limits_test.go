package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/gateway"
)

// gateway.limits.max_in_flight_per_address reaches the gateway: the
// file's value, else an eighth of max_in_flight_per_identity (128 with the
// embedded default's 1024).
func TestGatewayInFlightPerAddressConfigApplied(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, k := range []struct {
		body        string
		perIdentity int
		perAddress  int
	}{
		{"realms: [{name: a}]\n", 1024, 128},
		{"gateway: {limits: {max_in_flight_per_address: 5}}\n", 1024, 5},
		{"gateway: {limits: {max_in_flight_per_identity: 64}}\n", 64, 8},
	} {
		c, err := parseConfig([]byte(k.body), nil)
		if err != nil {
			t.Fatal(err)
		}
		l := gateway.DefaultedLimits(c.gatewayOptions(log).Limits)
		if l.MaxInFlightPerIdentity != k.perIdentity || l.MaxInFlightPerAddress != k.perAddress {
			t.Errorf("%q: MaxInFlightPerIdentity %d, MaxInFlightPerAddress %d; want %d, %d", k.body, l.MaxInFlightPerIdentity, l.MaxInFlightPerAddress, k.perIdentity, k.perAddress)
		}
	}
}

// TestGatewayNegativeCountsRefused: a negative count in the gateway
// section is refused, naming its line, as the file's other negative
// numbers are (the gateway took it for its default: max_connections: -1
// ran with 10000); 0 is the default, which the gateway gets.
func TestGatewayNegativeCountsRefused(t *testing.T) {
	cases := []struct{ body, want string }{
		{"gateway:\n  limits:\n    max_connections: -1\n", "line 3: gateway.limits.max_connections must not be negative"},
		{"gateway:\n  limits:\n    max_in_flight: -5\n", "line 3: gateway.limits.max_in_flight must not be negative"},
		{"gateway:\n  limits:\n    max_in_flight_per_identity: -1\n", "line 3: gateway.limits.max_in_flight_per_identity must not be negative"},
		{"gateway:\n  limits:\n    max_in_flight_per_address: -1\n", "line 3: gateway.limits.max_in_flight_per_address must not be negative"},
		{"gateway:\n  limits:\n    max_sessions: -1\n", "line 3: gateway.limits.max_sessions must not be negative"},
		{"gateway:\n  limits:\n    sessions_per_identity: -1\n", "line 3: gateway.limits.sessions_per_identity must not be negative"},
		{"gateway:\n  limits:\n    max_streams: -1\n", "line 3: gateway.limits.max_streams must not be negative"},
		{"gateway:\n  limits:\n    max_streams_per_client: -1\n", "line 3: gateway.limits.max_streams_per_client must not be negative"},
		{"gateway:\n  limits:\n    sse_queue: -1\n", "line 3: gateway.limits.sse_queue must not be negative"},
		{"gateway:\n  limits:\n    auth_failures: -1\n", "line 3: gateway.limits.auth_failures must not be negative"},
		{"gateway:\n  callees:\n    - {realm: realm1, procedure: com.p, url: \"http://127.0.0.1:1/p\", max_concurrent: -1}\n",
			"line 3: gateway.callees[0].max_concurrent must not be negative"},
		{"gateway:\n  webhooks:\n    - realm: realm1\n      topic: com.t\n      url: \"http://127.0.0.1:1/h\"\n      queue: -1\n      retries: -1\n      concurrency: -1\n",
			"line 6: gateway.webhooks[0].queue must not be negative"},
		{"gateway:\n  webhooks:\n    - {realm: realm1, topic: com.t, url: \"http://127.0.0.1:1/h\", retries: -1}\n", "line 3: gateway.webhooks[0].retries must not be negative"},
		{"gateway:\n  webhooks:\n    - {realm: realm1, topic: com.t, url: \"http://127.0.0.1:1/h\", concurrency: -2}\n", "line 3: gateway.webhooks[0].concurrency must not be negative"},
		// Off, the file's webhooks still reach a running gateway at a reload.
		{"gateway:\n  listen: \"off\"\n  webhooks:\n    - {realm: realm1, topic: com.t, url: \"http://127.0.0.1:1/h\", queue: -1}\n", "line 4: gateway.webhooks[0].queue must not be negative"},
		{"realms:\n  - name: realm1\n    oauth:\n      max_refresh_tokens: -1\n      clients: [{id: c, public: true}]\n", "line 4: realms[0].oauth.max_refresh_tokens must not be negative"},
		{"gateway:\n  limits:\n    max_streams_per_identity: -1\n", "line 3: gateway.limits.max_streams_per_identity must not be negative"},
	}
	for _, k := range cases {
		p := writeConfig(t, k.body)
		if o, e, code := runCLI("check-config", p); code != 1 || !strings.Contains(e, k.want) {
			t.Errorf("check-config %q: exit %d: %s%s\nwant 1 and %q", k.body, code, o, e, k.want)
		}
	}
	// Every webhook count at once: each named.
	_, e, _ := runCLI("check-config", writeConfig(t, cases[11].body))
	for _, w := range []string{"line 7: gateway.webhooks[0].retries", "line 8: gateway.webhooks[0].concurrency"} {
		if !strings.Contains(e, w) {
			t.Errorf("check-config: %s\nlacks %q", e, w)
		}
	}

	// 0 is the default.
	c, err := parseConfig([]byte("gateway:\n  limits: {max_connections: 0, max_in_flight: 0, auth_failures: 0, sse_queue: 0}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := gateway.DefaultedLimits(c.gatewayOptions(slog.New(slog.DiscardHandler)).Limits)
	if l.MaxConnections != 10000 || l.MaxInFlight != 8192 || l.AuthFailures != 30 || l.SSEQueue != 256 {
		t.Fatalf("0 did not take the defaults: %+v", l)
	}
}

// TestGatewayQueueSizesBounded: gateway.webhooks[].queue,
// .concurrency and gateway.limits.sse_queue size what the gateway
// allocates whole, ahead of any event: a webhook's queue is a channel of
// queue slots made when the webhook starts (at start and at the reload
// that adds or changes it), its concurrency the goroutines started with
// it, and sse_queue the channel each event stream and each streamed call
// makes when a client opens it. They had no upper bound: check-config said
// ok to queue: 2000000000, and run (or a reload of the running router) then
// allocated 16 GB for its channel (measured: 15 GB resident, the start
// stalled for minutes, a machine with less memory kills the router), and
// sse_queue: 100000000 made each SSE request of any client allocate 800 MB
// (11 GB for a streamed call's). Now each has a maximum (65,536 events,
// 1,024 deliveries, 16,384 frames), refused past it by check-config, run
// and a reload alike, naming the key and its line; a running router keeps
// its webhooks.
func TestGatewayQueueSizesBounded(t *testing.T) {
	cases := []struct{ body, want string }{
		{"gateway:\n  webhooks:\n    - realm: realm1\n      topic: com.t\n      url: \"http://127.0.0.1:1/h\"\n      queue: 2000000000\n",
			"line 6: gateway.webhooks[0].queue is at most 65536"},
		{"gateway:\n  webhooks:\n    - {realm: realm1, topic: com.t, url: \"http://127.0.0.1:1/h\", queue: 65537}\n", "line 3: gateway.webhooks[0].queue is at most 65536"},
		{"gateway:\n  webhooks:\n    - realm: realm1\n      topic: com.t\n      url: \"http://127.0.0.1:1/h\"\n      concurrency: 1000000\n",
			"line 6: gateway.webhooks[0].concurrency is at most 1024"},
		{"gateway:\n  limits:\n    sse_queue: 100000000\n", "line 3: gateway.limits.sse_queue is at most 16384"},
		// Off, the file's webhooks still reach a running gateway at a reload.
		{"gateway:\n  listen: \"off\"\n  webhooks:\n    - {realm: realm1, topic: com.t, url: \"http://127.0.0.1:1/h\", queue: 65537}\n", "line 4: gateway.webhooks[0].queue is at most 65536"},
	}
	var bad []string
	for _, k := range cases {
		if o, e, code := runCLI("check-config", writeConfig(t, k.body)); code != 1 || !strings.Contains(e, k.want) {
			bad = append(bad, fmt.Sprintf("check-config %q: exit %d: %s%s; want 1 and %q", k.body, code, o, strings.TrimSpace(e), k.want))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d files:\n%s", len(bad), len(cases), strings.Join(bad, "\n"))
	}
	// The maxima themselves are taken.
	at := "gateway:\n  limits: {sse_queue: 16384}\n  webhooks:\n    - {realm: realm1, topic: com.t, url: \"http://127.0.0.1:1/h\", queue: 65536, concurrency: 1024}\n"
	if o, e, code := runCLI("check-config", writeConfig(t, at)); code != 0 {
		t.Fatalf("check-config of the maxima: exit %d: %s%s", code, o, e)
	}

	// A reload past a maximum is refused whole: the running webhook stays.
	hook := func(queue int) string {
		return runnersYAML(nil, []string{fmt.Sprintf("{name: w1, realm: realm1, topic: com.t, url: \"http://127.0.0.1:1/h\", queue: %d}", queue)})
	}
	g := startReloadedGateway(t, hook(16))
	g.reloadRefused(hook(65537))
	if l := grepLines(g.logs(), "SIGHUP: configuration refused"); !strings.Contains(l, "gateway.webhooks[0].queue is at most 65536") {
		t.Fatalf("the refusal does not name the key: %s", l)
	}
	if strings.Contains(g.logs(), "webhooks_changed") {
		t.Fatalf("a refused reload changed the webhooks:\n%s", lastLines(g.logs(), 3))
	}
}

// TestGatewaySSEKeepaliveBounded: gateway.limits.sse_keepalive took any
// period, and an event stream's keepalive ticks at it: with 1ns one curl
// of /wamp/realm1/events/... received 3.5 MB of comment lines in 2 s, and
// check-config said ok. Below a second it is refused, naming the key.
func TestGatewaySSEKeepaliveBounded(t *testing.T) {
	for _, k := range []struct{ body, want string }{
		{"gateway:\n  limits:\n    sse_keepalive: 1ns\n", "line 3: gateway.limits.sse_keepalive 1ns is below the minimum 1s"},
		{"gateway:\n  limits: {sse_keepalive: 999ms}\n", "line 2: gateway.limits.sse_keepalive 999ms is below the minimum 1s"},
		{"gateway:\n  limits: {sse_keepalive: 1s}\n", ""},
		{"gateway:\n  limits: {sse_keepalive: 0s}\n", ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}

// TestGatewayKeyRealmChecked: an API key or signing key naming a realm
// the file does not configure (a typo) authenticated nothing, every
// request with it refused, and check-config said ok, where a route's, a
// callee's or a webhook's realm was checked. It is refused, naming the key.
func TestGatewayKeyRealmChecked(t *testing.T) {
	for _, k := range []struct{ body, want string }{
		{"gateway:\n  api_keys:\n    - {name: a, key: 0123456789abcdef0123, realm: realm2, role: r}\n", "line 3: API key realm \"realm2\" is not configured"},
		{"gateway:\n  signing_keys:\n    - {key: k1, secret: 0123456789abcdef0123, realm: realm2, role: r}\n", "line 3: signing key realm \"realm2\" is not configured"},
		{"gateway:\n  api_keys:\n    - {name: a, key: 0123456789abcdef0123, realm: realm1, role: r}\n", ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}

// TestGatewayAuthFailuresExemptApplied: limits.auth_failures.exempt
// reaches the gateway's HTTP limiter, unmapped as for the WAMP and OAuth2
// limiters (an IPv4-mapped network is its IPv4 one).
func TestGatewayAuthFailuresExemptApplied(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := parseConfig([]byte("limits: {auth_failures: {exempt: [10.0.0.0/8, \"::ffff:192.0.2.0/120\"]}}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := c.gatewayOptions(log).AuthFailuresExempt
	if len(got) != 2 || got[0].String() != "10.0.0.0/8" || got[1].String() != "192.0.2.0/24" {
		t.Fatalf("gateway AuthFailuresExempt %v, want [10.0.0.0/8 192.0.2.0/24]", got)
	}
}
