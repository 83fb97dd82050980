package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshMetrics: on a mesh of three processes, GET /metrics reports the
// node's NATS connection, the nodes it sees, its claim store and the
// mesh's loss counters; an exclusive registration is settled by the
// claim store, not provisionally; a node killed with SIGKILL
// shows as lost on the others. A router without a mesh exports no mesh
// metric.
func TestMeshMetrics(t *testing.T) {
	t.Parallel()
	capped := writeFile(t, "capped.yaml", "mesh: {calls_in_flight: 1, max_interest: 4}\n")
	procs := processCluster(t, func(i int) []string {
		if i == 0 {
			return []string{"-gateway-listen", "127.0.0.1:0", "-config", capped}
		}
		return []string{"-gateway-listen", "127.0.0.1:0"}
	}, "ma", "mb", "mc")
	a, b, c := procs[0], procs[1], procs[2]
	ga, gb := meshGateway(t, a), meshGateway(t, b)

	// Every node sees the two others, once the heartbeats have run, and
	// reaches the claim store.
	meshEventually(t, 20*time.Second, func() error {
		for _, g := range []*gwRouter{ga, gb} {
			fams := scrape(t, g)
			for _, w := range []struct {
				name string
				want float64
			}{{"edgewamp_mesh_connected", 1}, {"edgewamp_mesh_peers", 2}, {"edgewamp_mesh_claim_store_ready", 1}} {
				if v := metricValue(fams, w.name); v != w.want {
					return fmt.Errorf("%s: %s = %v, want %v", g.base, w.name, v, w.want)
				}
			}
		}
		return nil
	})
	fams := scrape(t, ga)
	if v := metricValue(fams, "edgewamp_mesh_peers_joined_total"); v < 2 {
		t.Fatalf("edgewamp_mesh_peers_joined_total = %v, want at least 2", v)
	}
	for _, reason := range []string{"outbound_full", "slow_consumer", "publish_error", "bad_frame", "bad_envelope", "version_mismatch", "inbound_full", "control_full", "query_late", "gather_full", "paced_answer_full", "paced_answer_dropped", "retained_answer_full", "meta_answer_too_large", "same_name", "too_many_peers", "interrupt_full", "interrupt_repeat_full"} {
		if v := metricValue(fams, "edgewamp_mesh_messages_dropped_total", "reason", reason); v != 0 {
			t.Fatalf("edgewamp_mesh_messages_dropped_total{reason=%q} = %v on a quiet mesh, want 0", reason, v)
		}
	}
	for _, name := range []string{"edgewamp_mesh_presence_announced_total", "edgewamp_mesh_presence_untracked_total"} {
		if v := metricValue(fams, name); v < 0 {
			t.Fatal("no " + name)
		}
	}
	if v := metricValue(fams, "edgewamp_mesh_gathers_incomplete_total"); v < 0 {
		t.Fatal("no edgewamp_mesh_gathers_incomplete_total")
	}
	for _, name := range []string{"edgewamp_mesh_event_duplicates_total", "edgewamp_mesh_invocations_refused_total",
		"edgewamp_mesh_calls_refused_total", "edgewamp_mesh_calls_bounced_total", "edgewamp_mesh_invocations_expired_total", "edgewamp_mesh_callees_revoked_total",
		"edgewamp_mesh_nats_disconnects_total", "edgewamp_mesh_wide_realms", "edgewamp_mesh_peers_incompatible",
		"edgewamp_mesh_peers_unheard", "edgewamp_mesh_peers_same_name"} {
		if v := metricValue(fams, name); v != 0 {
			t.Fatalf("%s = %v on a quiet mesh, want 0", name, v)
		}
	}

	// An exclusive registration on A is settled by the claim store (not
	// accepted provisionally), and refused on B. (B refuses it from the
	// registrations it already knows, so its claims_total{result="refused"},
	// which counts refusals by the store in a race, need not move.)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	noop := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	if _, err := a.dial(a.ws(), proto.JSON).Register(ctx, "com.metrics.one", noop, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.dial(b.ws(), proto.MsgPack).Register(ctx, "com.metrics.one", noop, nil); wampURI(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("B registered a single procedure A holds: %v", err)
	}
	fams = scrape(t, ga)
	if v := metricValue(fams, "edgewamp_mesh_claims_total", "result", "provisional"); v != 0 {
		t.Fatalf("A: edgewamp_mesh_claims_total{result=\"provisional\"} = %v, want 0", v)
	}
	if v := metricValue(fams, "edgewamp_mesh_claims_total", "result", "refused"); v != 0 {
		t.Fatalf("A: edgewamp_mesh_claims_total{result=\"refused\"} = %v, want 0", v)
	}
	for _, r := range []string{"reasserted", "swept"} {
		if v := metricValue(fams, "edgewamp_mesh_claims_total", "result", r); v != 0 {
			t.Fatalf("A: edgewamp_mesh_claims_total{result=%q} = %v, want 0", r, v)
		}
	}

	// A session on A (mesh.calls_in_flight: 1) holding a call on B's
	// callee gets wamp.error.unavailable for a second one, counted.
	release, held := make(chan struct{}), make(chan struct{}, 1)
	hold := func(ctx context.Context, _ *client.Invocation) (*client.Result, error) {
		select {
		case held <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &client.Result{}, nil
	}
	if _, err := b.dial(b.ws(), proto.JSON).Register(ctx, "com.metrics.hold", hold, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	first := make(chan error, 1)
	// Until A knows B's registration (no_such_procedure until then), and
	// the call is held on B: not "no answer within 200 ms", which a
	// no_such_procedure late on a loaded machine also is (the next call
	// then found A with no call in flight, and hung on B's callee).
	meshEventually(t, 10*time.Second, func() error {
		go func() { _, err := caller.Call(ctx, "com.metrics.hold", nil, nil, nil); first <- err }()
		select {
		case err := <-first:
			return fmt.Errorf("the first call ended: %v", err)
		case <-held:
			return nil
		}
	})
	if _, err := caller.Call(ctx, "com.metrics.hold", nil, nil, nil); wampURI(err) != proto.URIUnavailable {
		t.Fatalf("a second call over mesh.calls_in_flight: %v, want %s", err, proto.URIUnavailable)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the held call: %v", err)
	}
	if v := metricValue(scrape(t, ga), "edgewamp_mesh_calls_refused_total"); v != 1 {
		t.Fatalf("A: edgewamp_mesh_calls_refused_total = %v, want 1", v)
	}

	// A session on A subscribing to more distinct topics than
	// mesh.max_interest (4) turns A's interest in the realm into one
	// subscription to all of its events, shown as a wide realm; B's
	// events still reach it.
	got := make(chan string, 16)
	sub := a.dial(a.rs(), proto.MsgPack)
	for i := range 5 {
		if _, err := sub.Subscribe(ctx, fmt.Sprintf("com.metrics.t%d", i), func(e *client.Event) { got <- e.Topic }, nil); err != nil {
			t.Fatal(err)
		}
	}
	if v := metricValue(scrape(t, ga), "edgewamp_mesh_wide_realms"); v != 1 {
		t.Fatalf("A: edgewamp_mesh_wide_realms = %v after 5 subscriptions over mesh.max_interest 4, want 1", v)
	}
	pub := b.dial(b.ws(), proto.JSON)
	meshEventually(t, 10*time.Second, func() error {
		if err := pub.Publish(ctx, "com.metrics.t4", []any{1}, nil, nil); err != nil {
			return err
		}
		select {
		case topic := <-got:
			if topic != "com.metrics.t4" {
				return fmt.Errorf("event of %s", topic)
			}
			return nil
		case <-time.After(200 * time.Millisecond):
			return fmt.Errorf("no event on A")
		}
	})

	// C dies: A counts it lost within the failure detection's bound.
	lost0 := metricValue(scrape(t, ga), "edgewamp_mesh_peers_lost_total")
	if lost0 < 0 {
		t.Fatal("edgewamp_mesh_peers_lost_total missing")
	}
	c.kill(t)
	killed := time.Now()
	meshEventually(t, 10*time.Second, func() error {
		fams := scrape(t, ga)
		if v := metricValue(fams, "edgewamp_mesh_peers"); v != 1 {
			return fmt.Errorf("edgewamp_mesh_peers = %v, want 1", v)
		}
		if v := metricValue(fams, "edgewamp_mesh_peers_lost_total"); v < lost0+1 {
			return fmt.Errorf("edgewamp_mesh_peers_lost_total = %v, want %v or more", v, lost0+1)
		}
		return nil
	})
	t.Logf("A's metrics showed C lost %v after the SIGKILL", time.Since(killed).Round(time.Millisecond))

	// Alone: no mesh, no mesh metric.
	for name := range scrape(t, startGatewayRouter(t)) {
		if strings.HasPrefix(name, "edgewamp_mesh_") {
			t.Fatalf("a router without a mesh exports %s", name)
		}
	}
}

// meshGateway is the HTTP gateway of a mesh process started with
// -gateway-listen.
func meshGateway(t *testing.T, p *meshProc) *gwRouter {
	t.Helper()
	p.mu.Lock()
	gw := p.gw
	p.mu.Unlock()
	if gw == "" {
		t.Fatalf("%s: no gateway listening line\n%s", p.name, p.logs())
	}
	return &gwRouter{router: p.router, base: "http://" + gw, hc: &http.Client{Timeout: 30 * time.Second}}
}
