package main

import (
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
