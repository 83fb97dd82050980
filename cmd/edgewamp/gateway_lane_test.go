package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestGatewayEventLoop: by default the event loops serve the gateway's
// port (gateway.event_loop), and gateway.event_loop: false gives it to
// net/http alone; a bridge call answers the same either way, from Go's
// HTTP client and from curl with a body large enough for curl to send
// Expect: 100-continue (which the loops hand to net/http).
func TestGatewayEventLoop(t *testing.T) {
	big := strings.Repeat("x", 4<<10)
	for _, tc := range []struct {
		name, yaml string
		lane       bool
	}{
		{"default", "", true},
		{"event_loop false", "gateway:\n  listen: 127.0.0.1:0\n  event_loop: false\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.yaml != "" {
				f := filepath.Join(t.TempDir(), "edgewamp.yaml")
				os.WriteFile(f, []byte(tc.yaml), 0o600)
				args = append(args, "-config", f)
			}
			g := startGatewayRouter(t, args...)
			if want := fmt.Sprintf("event_loop=%v", tc.lane); !strings.Contains(g.router.logs(), want) {
				t.Fatalf("no %s in the gateway's log line:\n%s", want, g.router.logs())
			}
			callee := g.router.dial("rs://"+g.router.addr, proto.MsgPack)
			defer callee.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := callee.Register(ctx, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
				return &client.Result{Args: inv.Args}, nil
			}, nil); err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				r, body := g.do(t, "POST", "/wamp/realm1/call/com.echo", fmt.Sprintf(`{"args":[%d]}`, i))
				if want := fmt.Sprintf(`{"args":[%d],"kwargs":{}}`, i); r.StatusCode != 200 || string(body) != want {
					t.Fatalf("call %d: %d %s", i, r.StatusCode, body)
				}
			}
			out, err := exec.CommandContext(ctx, "curl", "-sS", "-X", "POST", g.base+"/wamp/realm1/call/com.echo",
				"-H", "Content-Type: application/json", "-d", `{"args":["`+big+`"]}`).CombinedOutput()
			if err != nil || string(out) != `{"args":["`+big+`"],"kwargs":{}}` {
				t.Fatalf("curl: %v %.200s", err, out)
			}
			r, body := g.do(t, "GET", "/healthz", "")
			if r.StatusCode != 200 || !strings.Contains(string(body), "ok") {
				t.Fatalf("healthz: %d %s", r.StatusCode, body)
			}
		})
	}
}

// edgewamp_connections counts the WAMP listeners' connections only, as
// README and its HELP say ("Connections open on the WAMP listeners"), and
// edgewamp_connections_closed_total their closes; the HTTP connections of
// the gateway's port on the event loops are counted apart
// (edgewamp_gateway_lane_connections, _closed_total{reason}), and in
// edgewamp_connection_fds with the rest. Found by review: the lane is an
// event-loop listener and Engine.Stats summed every listener, so 20 idle
// HTTP connections to the gateway and no WAMP connection read
// edgewamp_connections 20, and their closes (http_handoff for each
// request net/http serves) were counted as WAMP closes.
func TestConnectionsGaugeCountsWAMPOnly(t *testing.T) {
	g := startGatewayRouter(t)
	r := g.router
	r.mu.Lock()
	gw := r.gw
	r.mu.Unlock()
	s := r.dial("rs://"+r.addr, proto.MsgPack) // one WAMP connection
	defer s.Close()
	const n = 20
	var idle []net.Conn
	for range n {
		c, err := net.Dial("tcp", gw)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	time.Sleep(300 * time.Millisecond)
	fams := scrape(t, g)
	conns, lane, fds := metricValue(fams, "edgewamp_connections"), metricValue(fams, "edgewamp_gateway_lane_connections"), metricValue(fams, "edgewamp_connection_fds")
	t.Logf("edgewamp_connections = %v, edgewamp_gateway_lane_connections = %v, edgewamp_connection_fds = %v, with 1 WAMP connection and %d idle HTTP connections to the gateway", conns, lane, fds, n)
	if conns != 1 {
		t.Fatalf("edgewamp_connections = %v with one WAMP connection open (the gateway's HTTP connections are counted)", conns)
	}
	if lane < n || fds < n+1 {
		t.Fatalf("edgewamp_gateway_lane_connections = %v, edgewamp_connection_fds = %v, want at least %d and %d", lane, fds, n, n+1)
	}
	for _, c := range idle {
		c.Close()
	}
	waitUntil(t, fmt.Sprintf("edgewamp_gateway_lane_connections_closed_total{reason=peer_closed} at least %d", n), func() bool {
		fams = scrape(t, g)
		return metricValue(fams, "edgewamp_gateway_lane_connections_closed_total", "reason", "peer_closed") >= n
	})
	for _, reason := range []string{"peer_closed", "http_handoff"} {
		if v := metricValue(fams, "edgewamp_connections_closed_total", "reason", reason); v != 0 {
			t.Errorf("edgewamp_connections_closed_total{reason=%q} = %v with no WAMP connection closed", reason, v)
		}
	}
	if v := metricValue(fams, "edgewamp_gateway_lane_connections_closed_total", "reason", "http_handoff"); v < 1 {
		t.Errorf("edgewamp_gateway_lane_connections_closed_total{reason=http_handoff} = %v after the scrapes net/http served", v)
	}
	if v := metricValue(fams, "edgewamp_connections"); v != 1 {
		t.Errorf("edgewamp_connections = %v at the end, want 1", v)
	}

	// Without the lane the gauge is not exported.
	f := filepath.Join(t.TempDir(), "edgewamp.yaml")
	os.WriteFile(f, []byte("gateway:\n  listen: 127.0.0.1:0\n  event_loop: false\n"), 0o600)
	g2 := startGatewayRouter(t, "-config", f)
	if v := metricValue(scrape(t, g2), "edgewamp_gateway_lane_connections"); v != -1 {
		t.Errorf("edgewamp_gateway_lane_connections = %v with gateway.event_loop: false, want none", v)
	}
}
