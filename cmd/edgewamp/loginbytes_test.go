package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestLoginBytesKey: limits.login_bytes sets route.Config.MaxLoginBytes
// (what all logins in progress hold; route's TestLoginBytesBounded), at
// least 1 MiB, 0 its default.
func TestLoginBytesKey(t *testing.T) {
	const want = "limits.login_bytes 512KiB is below 1MiB"
	if _, e, code := runCLI("check-config", writeFile(t, "low.yaml", "limits: {login_bytes: 512KiB}\nrealms: [{name: r}]\n")); code != 1 || !strings.Contains(e, want) {
		t.Errorf("check-config of 512 KiB: exit %d, want 1 and %q: %s", code, want, e)
	}
	c, err := parseConfig([]byte("limits: {login_bytes: 2MiB}\nrealms: [{name: r}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.routeConfig(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rc.MaxLoginBytes; got != 2<<20 {
		t.Errorf("route.Config.MaxLoginBytes = %d, want %d", got, 2<<20)
	}
}
