package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestCheckConfigRefusesSubSecondGatewayTimers: the HTTP gateway's
// timeouts under a second (read_header_timeout: 1ns failed every request
// before its headers were read, write_timeout: 1ns every answer) and its
// call timeouts under the millisecond WAMP counts in are refused, naming
// the key and the floor, as sse_keepalive's already was; before,
// check-config said ok. 0 (the default) and the floors pass.
func TestCheckConfigRefusesSubSecondGatewayTimers(t *testing.T) {
	const gw = "gateway: {listen: \"127.0.0.1:0\", %s}\n"
	for _, c := range []struct{ yaml, key, floor string }{
		{"limits: {read_header_timeout: 1ns}", "gateway.limits.read_header_timeout", "1s"},
		{"limits: {body_timeout: 999ms}", "gateway.limits.body_timeout", "1s"},
		{"limits: {write_timeout: 1ns}", "gateway.limits.write_timeout", "1s"},
		{"limits: {idle_timeout: 1us}", "gateway.limits.idle_timeout", "1s"},
		{"limits: {session_idle: 1ns}", "gateway.limits.session_idle", "1s"},
		{"call_timeout: 1ns", "gateway.call_timeout", "1ms"},
		{"max_call_timeout: 999us", "gateway.max_call_timeout", "1ms"},
	} {
		p := writeConfig(t, fmt.Sprintf(gw, c.yaml))
		_, e, code := runCLI("check-config", p)
		if want := fmt.Sprintf("line 1: %s ", c.key); code != 1 || !strings.Contains(e, want) || !strings.Contains(e, "at least "+c.floor) {
			t.Errorf("check-config with %q: exit %d: %s\nwant 1, %q and \"at least %s\"", c.yaml, code, e, want, c.floor)
		}
	}
	p := writeConfig(t, fmt.Sprintf(gw, "call_timeout: 1ms, max_call_timeout: 1s, limits: {read_header_timeout: 1s, body_timeout: 1s, write_timeout: 1s, idle_timeout: 1s, session_idle: 0s}"))
	if o, e, code := runCLI("check-config", p); code != 0 {
		t.Errorf("check-config at the floors: exit %d: %s%s", code, o, e)
	}
}
