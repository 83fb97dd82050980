package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestCheckConfigRefusesSubSecondTimers: a keepalive or transport timer
// under the once-a-second scan that times it (keepalive.interval: 1ns
// pinged every connection at each scan, keepalive.timeout: 1ns closed
// every session whose pong had not come back by the next one) and a call
// timeout under the millisecond WAMP counts in are refused, naming the key
// and the floor; before, check-config said ok. 0 (the default) and the
// floors themselves pass.
func TestCheckConfigRefusesSubSecondTimers(t *testing.T) {
	for _, c := range []struct{ yaml, key, floor string }{
		{"keepalive: {interval: 1ns}\n", "keepalive.interval", "1s"},
		{"keepalive: {timeout: 999ms}\n", "keepalive.timeout", "1s"},
		{"limits: {handshake_timeout: 1ns}\n", "limits.handshake_timeout", "1s"},
		{"limits: {hello_timeout: 99ms}\n", "limits.hello_timeout", "100ms"},
		{"limits: {idle_timeout: 1us}\n", "limits.idle_timeout", "1s"},
		{"rpc: {call_timeout: 1ns}\n", "rpc.call_timeout", "1ms"},
		{"rpc: {max_call_timeout: 999us}\n", "rpc.max_call_timeout", "1ms"},
	} {
		p := writeConfig(t, c.yaml)
		_, e, code := runCLI("check-config", p)
		if want := fmt.Sprintf("line 1: %s ", c.key); code != 1 || !strings.Contains(e, want) || !strings.Contains(e, "at least "+c.floor) {
			t.Errorf("check-config with %q: exit %d: %s\nwant 1, %q and \"at least %s\"", c.yaml, code, e, want, c.floor)
		}
	}
	p := writeConfig(t, "keepalive: {interval: 1s, timeout: 1s}\nlimits: {handshake_timeout: 1s, hello_timeout: 1s, idle_timeout: 0s}\nrpc: {call_timeout: 1ms, max_call_timeout: 0s}\n")
	if o, e, code := runCLI("check-config", p); code != 0 {
		t.Errorf("check-config at the floors: exit %d: %s%s", code, o, e)
	}
}

// TestCheckConfigTakesSubSecondHelloTimeout: hello_timeout is timed by the
// router's timers, to the millisecond, not by the event loops' scan: a
// hello_timeout: 500ms (a LAN deployment's, a test's) worked, and e9c88f4
// refused it with the scan-timed keys ("at least 1s"), a start that
// worked then failed (ExecStartPre, the .deb's upgrade). Its floor is
// 100ms, as mesh.ping_interval's and oauth.sync_interval's.
func TestCheckConfigTakesSubSecondHelloTimeout(t *testing.T) {
	for _, v := range []string{"100ms", "500ms"} {
		p := writeConfig(t, "limits: {hello_timeout: "+v+"}\n")
		if o, e, code := runCLI("check-config", p); code != 0 {
			t.Errorf("check-config with hello_timeout: %s: exit %d: %s%s", v, code, o, e)
		}
	}
}
