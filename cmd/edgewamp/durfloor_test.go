package main

import (
	"strings"
	"testing"
)

// TestCheckConfigRefusesUselesslyShortDurations: the duration keys the
// timer floors (timerfloor_test.go, gwtimerfloor_test.go) left without
// one took 1ns and check-config said ok: limits.auth_failures.window:
// 1ns forgot each failed login before the next (no lockout ever) and
// lockout: 1ns ended each lockout at once; a webhook's backoff: 1ns made
// its retries within microseconds and max_backoff: 1ns cut every
// Retry-After to nothing; a callee's, webhook's or route's timeout: 1ns
// failed every call or post; signature_max_skew: 1ns refused every signed
// request; device_poll_interval: 1ns told devices `interval: 0`, so they
// could poll without pause; refresh_token_lifetime: 1ns ended every login
// at its first refresh; mesh.gather_timeout: 1ns made every meta query
// partial; shutdown.drain_timeout: 1ns passed for a drain. Each is now
// refused, naming the key and its floor; 0 and the floors pass.
func TestCheckConfigRefusesUselesslyShortDurations(t *testing.T) {
	const gw = "realms: [{name: realm1, anonymous: true}]\ngateway: {listen: \"127.0.0.1:0\", "
	const oa = "realms: [{name: r, oauth: {clients: [{id: c, public: true}], "
	const mesh = "mesh: {node: a, cluster: {listen: \"127.0.0.1:0\"}, "
	for _, c := range []struct{ yaml, key, floor string }{
		{"limits: {auth_failures: {window: 1ns}}\n", "limits.auth_failures.window", "1s"},
		{"limits: {auth_failures: {lockout: 999ms}}\n", "limits.auth_failures.lockout", "1s"},
		{"shutdown: {drain_timeout: 1ns}\n", "shutdown.drain_timeout", "1s"},
		{oa + "refresh_token_lifetime: 1ns}}]\n", "realms[0].oauth.refresh_token_lifetime", "5m"},
		{oa + "access_token_lifetime: 1h, refresh_token_lifetime: 59m}}]\n", "realms[0].oauth.refresh_token_lifetime", "1h"},
		{oa + "device_poll_interval: 1ns}}]\n", "realms[0].oauth.device_poll_interval", "1s"},
		{gw + "signature_max_skew: 1ns}\n", "gateway.signature_max_skew", "1s"},
		{gw + "cors: {allowed_origins: [\"*\"], max_age: 1ns}}\n", "gateway.cors.max_age", "1s"},
		{gw + "routes: [{name: r1, method: POST, path: /x, realm: realm1, call: a.b, timeout: 1ns}]}\n", "gateway.routes[0].timeout", "1ms"},
		{gw + "routes: [{name: r1, method: POST, path: /x, realm: realm1, call: a.b, cors: {allowed_origins: [\"*\"], max_age: 1ns}}]}\n", "gateway.routes[0].cors.max_age", "1s"},
		{gw + "callees: [{name: c1, realm: realm1, procedure: a.b, url: \"http://127.0.0.1:1/\", timeout: 1ns}]}\n", "gateway.callees[0].timeout", "1ms"},
		{gw + "webhooks: [{name: w1, realm: realm1, topic: a.b, url: \"http://127.0.0.1:1/\", timeout: 1ns}]}\n", "gateway.webhooks[0].timeout", "1ms"},
		{gw + "webhooks: [{name: w1, realm: realm1, topic: a.b, url: \"http://127.0.0.1:1/\", backoff: 1ns}]}\n", "gateway.webhooks[0].backoff", "10ms"},
		{gw + "webhooks: [{name: w1, realm: realm1, topic: a.b, url: \"http://127.0.0.1:1/\", max_backoff: 1ns}]}\n", "gateway.webhooks[0].max_backoff", "10ms"},
		{mesh + "gather_timeout: 1ns}\n", "mesh.gather_timeout", "10ms"},
	} {
		p := writeConfig(t, c.yaml)
		_, e, code := runCLI("check-config", p)
		if code != 1 || !strings.Contains(e, ": "+c.key+" ") || !strings.Contains(e, "at least "+c.floor) {
			t.Errorf("check-config with %q: exit %d: %s\nwant 1, %q and \"at least %s\"", c.yaml, code, e, c.key, c.floor)
		}
	}
	for _, y := range []string{
		"limits: {auth_failures: {window: 1s, lockout: 1s}}\nshutdown: {drain_timeout: 1s}\n",
		"limits: {auth_failures: {window: 0s, lockout: 0s}}\nshutdown: {drain_timeout: 0s}\n",
		oa + "refresh_token_lifetime: 5m, device_poll_interval: 1s}}]\n",
		oa + "access_token_lifetime: 1s, refresh_token_lifetime: 1s}}]\n",
		gw + "signature_max_skew: 1s, cors: {allowed_origins: [\"*\"], max_age: 1s}, routes: [{name: r1, method: POST, path: /x, realm: realm1, call: a.b, timeout: 1ms}]," +
			" callees: [{name: c1, realm: realm1, procedure: a.b, url: \"http://127.0.0.1:1/\", timeout: 1ms}]," +
			" webhooks: [{name: w1, realm: realm1, topic: a.b, url: \"http://127.0.0.1:1/\", timeout: 1ms, backoff: 10ms, max_backoff: 10ms}]}\n",
		mesh + "gather_timeout: 10ms}\n",
	} {
		if o, e, code := runCLI("check-config", writeConfig(t, y)); code != 0 {
			t.Errorf("check-config at the floors, %q: exit %d: %s%s", y, code, o, e)
		}
	}
}

// A webhook's max_backoff bounds every wait between its retries (the
// doubled backoff as well as a Retry-After): backoff: 100ms with
// max_backoff: 500ms, quick retries to a consumer on the same host or
// LAN, is a configuration that worked before the floors and must still
// pass. Below the backoff's own floor it is refused, as backoff is.
func TestCheckConfigTakesSubSecondWebhookMaxBackoff(t *testing.T) {
	const wh = "realms: [{name: realm1, anonymous: true}]\ngateway: {listen: \"127.0.0.1:0\", webhooks: [{name: w1, realm: realm1, topic: a.b, url: \"http://127.0.0.1:1/\", "
	if o, e, code := runCLI("check-config", writeConfig(t, wh+"backoff: 100ms, max_backoff: 500ms}]}\n")); code != 0 {
		t.Errorf("check-config with backoff: 100ms, max_backoff: 500ms: exit %d: %s%s, want 0", code, o, e)
	}
	_, e, code := runCLI("check-config", writeConfig(t, wh+"max_backoff: 9ms}]}\n"))
	if code != 1 || !strings.Contains(e, ": gateway.webhooks[0].max_backoff ") || !strings.Contains(e, "at least 10ms") {
		t.Errorf("check-config with max_backoff: 9ms: exit %d: %s\nwant 1, gateway.webhooks[0].max_backoff and \"at least 10ms\"", code, e)
	}
}
