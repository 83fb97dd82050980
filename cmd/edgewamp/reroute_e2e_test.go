package main

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// WAMP call re-routing against the built binary: Autobahn|Python callees
// (reroute_peer.py) that raise ApplicationError("wamp.error.unavailable")
// share a roundrobin registration with one that answers; calls from the Go
// client and from the HTTP gateway reach the one that answers, or get
// wamp.error.no_available_callee with the last refusal's payload when
// every callee refuses; the refusals are counted in /metrics.
func TestRerouteAutobahnPython(t *testing.T) {
	interopNeeds(t, "python")
	g := startGatewayRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const busy = 3
	run := &interopRun{p: interopProc{label: "reroute_peer.py", argv: []string{pythonBin(), "reroute_peer.py",
		"--url", "ws://" + g.addr + "/ws", "--serializer", "cbor", "--busy", "3"}}}
	if err := run.start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-run.ready:
	case <-run.exited:
		t.Fatalf("reroute_peer.py exited: %v\n%s", run.err, run.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("reroute_peer.py not ready")
	}
	stopped := false
	defer func() {
		if !stopped {
			stopPeers(t, g.router, []string{"realm1"}, run)
		}
	}()

	s, err := client.Dial(ctx, client.Config{URL: "ws://" + g.addr + "/ws", Realm: "realm1", Serializer: proto.JSON})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 2*(busy+1); i++ {
		res, err := s.Call(ctx, "com.reroute.svc", []any{i}, nil, &client.CallOptions{DiscloseMe: true})
		if err != nil {
			t.Fatalf("call %d: %v (the refusals were not rerouted)", i, err)
		}
		if len(res.Args) != 1 || !reflect.DeepEqual(res.Args[0], []any{"ok", float64(i)}) && !reflect.DeepEqual(res.Args[0], []any{"ok", int64(i)}) && !reflect.DeepEqual(res.Args[0], []any{"ok", uint64(i)}) {
			t.Fatalf("call %d: %v", i, res.Args)
		}
	}
	_, err = s.Call(ctx, "com.reroute.none", []any{1}, nil, nil)
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URINoAvailableCallee {
		t.Fatalf("every callee refusing: %v, want %s", err, proto.URINoAvailableCallee)
	}
	if len(we.Args) != 1 || we.Args[0] != "busy" || we.Kwargs["who"] == nil {
		t.Fatalf("no_available_callee payload %v %v, want the last refusal's", we.Args, we.Kwargs)
	}
	// Through the HTTP gateway: 503 with the URI.
	resp, body := g.do(t, "POST", "/wamp/realm1/call/com.reroute.none", `{"args":[2]}`)
	expectProblem(t, resp, body, 503, proto.URINoAvailableCallee)

	fams := scrape(t, g)
	if v := metricValue(fams, "edgewamp_call_reroutes_total", "result", "exhausted"); v != 2 {
		t.Fatalf("edgewamp_call_reroutes_total{result=\"exhausted\"} = %v, want 2", v)
	}
	if v := metricValue(fams, "edgewamp_call_reroutes_total", "result", "rerouted"); v < 2*(busy-1) {
		t.Fatalf("edgewamp_call_reroutes_total{result=\"rerouted\"} = %v, want at least %d", v, 2*(busy-1))
	}

	stopPeers(t, g.router, []string{"realm1"}, run)
	stopped = true
	// Each busy callee saw each call to com.reroute.none once.
	type inv struct {
		Invoked *struct {
			Proc   string
			Who    int
			Caller uint64
		}
	}
	perCallee := map[int]int{}
	served := 0
	run.mu.Lock()
	for _, l := range run.other {
		var m inv
		if json.Unmarshal([]byte(l), &m) != nil || m.Invoked == nil {
			continue
		}
		switch {
		case m.Invoked.Proc == "com.reroute.none":
			perCallee[m.Invoked.Who]++
		case m.Invoked.Who == busy:
			served++
			if m.Invoked.Caller != s.ID() { // disclose_me reached the callee that served
				t.Errorf("the serving callee saw caller %d, want %d", m.Invoked.Caller, s.ID())
			}
		}
	}
	run.mu.Unlock()
	if served != 2*(busy+1) {
		t.Errorf("the serving callee was invoked %d times, want %d", served, 2*(busy+1))
	}
	for i := 0; i < busy; i++ {
		if perCallee[i] != 2 {
			t.Errorf("busy callee %d got com.reroute.none %d times, want 2 (one per call): %v", i, perCallee[i], perCallee)
		}
	}
}
