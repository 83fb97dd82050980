package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestTransportMetrics: GET /metrics reports the event loops' send path
// (the one the start log names), the descriptors the connections hold
// against their budget, the byte budgets, no TLS where none is served,
// and on the io_uring path the rings' sends once events went out to
// several subscribers at a time; on the default path and with
// tuning.io_uring: off.
func TestTransportMetrics(t *testing.T) {
	t.Parallel()
	t.Run("default", func(t *testing.T) { t.Parallel(); checkTransportMetrics(t, startGatewayRouter(t)) })
	t.Run("io_uring_off", func(t *testing.T) {
		t.Parallel()
		checkTransportMetrics(t, startGatewayRouter(t, "-config", writeConfig(t, "tuning:\n  io_uring: off\n")))
	})
}

func checkTransportMetrics(t *testing.T, g *gwRouter) {
	path, other := "write", "io_uring"
	if strings.Contains(g.logs(), "send path: io_uring") {
		path, other = other, path
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const subs, events = 6, 20
	var got atomic.Int64
	for range subs {
		s := g.dial("ws://"+g.addr+"/ws", proto.MsgPack)
		defer s.Close()
		if _, err := s.Subscribe(ctx, "com.metrics.fanout", func(*client.Event) { got.Add(1) }, nil); err != nil {
			t.Fatal(err)
		}
	}
	pub := g.dial("ws://"+g.addr+"/ws", proto.JSON)
	defer pub.Close()
	for i := range events {
		if err := pub.Publish(ctx, "com.metrics.fanout", []any{i}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	meshEventually(t, 10*time.Second, func() error {
		if n := got.Load(); n != subs*events {
			return fmt.Errorf("%d of %d events received", n, subs*events)
		}
		return nil
	})

	fams := scrape(t, g)
	if v := metricValue(fams, "edgewamp_send_path", "path", path); v != 1 {
		t.Fatalf("edgewamp_send_path{path=%q} = %v; the log says %s", path, v, path)
	}
	if v := metricValue(fams, "edgewamp_send_path", "path", other); v != -1 {
		t.Fatalf("edgewamp_send_path{path=%q} exported (%v) beside the path in use", other, v)
	}
	fds, budget := metricValue(fams, "edgewamp_connection_fds"), metricValue(fams, "edgewamp_connection_fds_budget")
	if fds < subs+1 || budget <= fds {
		t.Fatalf("edgewamp_connection_fds = %v with %d WAMP sessions open, budget %v", fds, subs+1, budget)
	}
	for _, name := range []string{"edgewamp_inbound_budget_bytes", "edgewamp_outbound_budget_bytes"} {
		if v := metricValue(fams, name); v <= 0 {
			t.Fatalf("%s = %v", name, v)
		}
	}
	if v := metricValue(fams, "edgewamp_outbound_refused_total"); v != 0 {
		t.Fatalf("edgewamp_outbound_refused_total = %v after small events to reading subscribers", v)
	}
	if v, r := metricValue(fams, "edgewamp_connections_lingering"), metricValue(fams, "edgewamp_linger_resets_total"); v != 0 || r != 0 {
		t.Fatalf("edgewamp_connections_lingering = %v, edgewamp_linger_resets_total = %v with every session open and reading", v, r)
	}
	if v := metricValue(fams, "edgewamp_tls_connections"); v != 0 {
		t.Fatalf("edgewamp_tls_connections = %v without a TLS listener", v)
	}
	if v := metricValue(fams, "edgewamp_tls_handshakes", "state", "running"); v != 0 {
		t.Fatalf("edgewamp_tls_handshakes{state=\"running\"} = %v", v)
	}
	sends, enters := metricValue(fams, "edgewamp_io_uring_sends_total"), metricValue(fams, "edgewamp_io_uring_enters_total")
	if path == "io_uring" {
		// Each event went to 6 subscribers spread over the loops: a
		// loop's flush of two or more of them is one ring batch.
		if sends < events || enters <= 0 || enters > sends {
			t.Fatalf("io_uring path: %v sends in %v enters after %d events to %d subscribers", sends, enters, events, subs)
		}
	} else if sends != -1 || enters != -1 {
		t.Fatalf("write(2) path: io_uring counters exported (%v sends, %v enters)", sends, enters)
	}
	t.Logf("send path %s: %v sends in %v enters; %v descriptors of %v", path, sends, enters, fds, budget)
}

// TestConnectionsPerAddressMetrics: the binary applies
// limits.max_connections_per_address to its WAMP listener: with 2, a
// third connection from 127.0.0.1 is closed unanswered, logged with its
// reason and counted in edgewamp_connections_closed_total; the gateway's
// port on the event loops is not counted (its /metrics answers while the
// address is at its bound, the connection accepted by the loops and
// handed to net/http).
func TestConnectionsPerAddressMetrics(t *testing.T) {
	t.Parallel()
	g := startGatewayRouter(t, "-config", writeConfig(t, "limits:\n  max_connections_per_address: 2\n"))
	for range 2 {
		s := g.dial("ws://"+g.addr+"/ws", proto.JSON)
		defer s.Close()
	}
	c, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0x7F, 0xF1, 0, 0}) // a RawSocket handshake
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) || len(got) != 0 {
		t.Fatalf("a third connection from 127.0.0.1: %d bytes answered, %v (want closed unanswered)", len(got), err)
	}
	fams := scrape(t, g)
	if v := metricValue(fams, "edgewamp_connections_closed_total", "reason", "connections_per_address"); v != 1 {
		t.Errorf("edgewamp_connections_closed_total{reason=connections_per_address} %v, want 1", v)
	}
	if v := metricValue(fams, "edgewamp_gateway_lane_connections_closed_total", "reason", "http_handoff"); v < 1 {
		t.Errorf("edgewamp_gateway_lane_connections_closed_total{reason=http_handoff} %v: the scrape did not come through the event loops", v)
	}
	if v := metricValue(fams, "edgewamp_connections"); v != 2 {
		t.Errorf("edgewamp_connections %v, want 2", v)
	}
	if !strings.Contains(g.logs(), "reason=connections_per_address") {
		t.Errorf("no log line for the refusal\n%s", g.logs())
	}
}
