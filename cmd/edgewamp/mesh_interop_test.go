package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Third-party clients (Autobahn|JS, wampy, Autobahn|Python) on different
// nodes of a 3-process mesh: the cross-client scenarios of interop_test.go
// with each party on another node, over WebSocket and RawSocket, JSON,
// MsgPack and CBOR mixed.

type meshInteropCase struct {
	name  string
	needs []string
	procs func(a, b, c string) []interopProc
}

func meshInteropCases() []meshInteropCase {
	return []meshInteropCase{
		// Python callee (RawSocket/CBOR) on B; a wampy subscriber of its
		// events on C; Autobahn|JS and wampy callers on A and C: args,
		// kwargs, errors both ways, progressive results, every cancel mode,
		// timeouts.
		{name: "mesh/rpc-python-callee-js-callers", needs: []string{"node", "python"}, procs: func(a, b, c string) []interopProc {
			return []interopProc{
				peer(abpy(b, "rs", "cbor", "x-rpc-callee")),
				peer(wampy(c, "json", "x-rpc-sub", "--expect-from", "autobahn-js-json,wampy-msgpack")),
				ajs(a, "ws", "json", "x-rpc"),
				wampy(c, "msgpack", "x-rpc"),
			}
		}},
		// JSON caller (wampy) on A -> MsgPack callee (Python, RawSocket) on
		// B, which publishes the arguments -> CBOR subscriber
		// (Autobahn|JS) on C.
		{name: "mesh/mixed-json-caller-msgpack-callee-cbor-subscriber", needs: []string{"node", "python"}, procs: func(a, b, c string) []interopProc {
			return []interopProc{
				peer(ajs(c, "ws", "cbor", "x-mixed-sub")),
				peer(abpy(b, "rs", "msgpack", "x-mixed-callee")),
				wampy(a, "json", "x-mixed-caller"),
			}
		}},
		// Byte strings between a JSON session on A and MsgPack and CBOR
		// sessions on B and C, both ways, in events, arguments and results.
		{name: "mesh/binary-json-msgpack-cbor", needs: []string{"node", "python"}, procs: func(a, b, c string) []interopProc {
			return []interopProc{
				peer(abpy(a, "ws", "json", "x-binary-peer", "--expect-from", "autobahn-js-msgpack,wampy-cbor")),
				ajs(b, "ws", "msgpack", "x-binary"),
				wampy(c, "cbor", "x-binary"),
			}
		}},
		// Autobahn|Python sessions on A (RawSocket) and B (WebSocket), CBOR:
		// the Advanced Profile between nodes as the client sends and reads
		// it: pattern registrations and subscriptions (procedure, topic),
		// caller and publisher disclosure, black/white lists by session,
		// authid and authrole, first and last shared registrations,
		// testaments (on leave, on a kill from the other node), the meta
		// API about the other node's sessions, registrations and
		// subscriptions, a prefix get_retained, a progressive call past its
		// timeout and a leaving caller interrupting the callee, a leaving
		// callee ending the call wamp.error.canceled.
		{name: "mesh/advanced-profile-python", needs: []string{"python"}, procs: func(a, b, c string) []interopProc {
			return []interopProc{abpy(a, "rs", "cbor", "x-mesh-features", "--url2", "ws://"+b+"/ws")}
		}},
		// One roundrobin registration shared by a Python callee on B and a
		// wampy callee on C, called from Autobahn|JS (RawSocket) on A; the
		// meta API over both callees; a retained event from Python.
		{name: "mesh/shared-registration-retained-meta", needs: []string{"node", "python"}, procs: func(a, b, c string) []interopProc {
			return []interopProc{
				peer(abpy(b, "ws", "msgpack", "x-shared-peer")),
				peer(wampy(c, "cbor", "x-shared-peer")),
				ajs(a, "rs", "json", "x-shared"),
			}
		}},
	}
}

func TestMeshInterop(t *testing.T) {
	for _, c := range meshInteropCases() {
		t.Run(c.name, func(t *testing.T) {
			interopNeeds(t, c.needs...)
			t.Parallel()
			runMeshInterop(t, c)
		})
	}
}

func runMeshInterop(t *testing.T, c meshInteropCase) {
	ps := processCluster(t, nil, "a", "b", "c")
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	var runs, peers, drivers []*interopRun
	for _, p := range c.procs(ps[0].addr, ps[1].addr, ps[2].addr) {
		r := &interopRun{p: p}
		runs = append(runs, r)
		if p.peer {
			peers = append(peers, r)
		} else {
			drivers = append(drivers, r)
		}
	}
	report := func() {
		for _, r := range runs {
			reportInterop(t, r)
		}
		for _, p := range ps {
			if logs := p.logs(); strings.Contains(logs, "panic") || strings.Contains(logs, "DATA RACE") {
				t.Errorf("%s: router log shows a panic:\n%s", p.name, logs)
			}
			if t.Failed() {
				t.Logf("%s log (tail):\n%s", p.name, tail(p.logs(), 25))
			}
		}
	}
	for _, r := range peers {
		if err := r.start(ctx); err != nil {
			t.Fatalf("%s: %v", r.p.label, err)
		}
		select {
		case <-r.ready:
		case <-r.exited:
			report()
			t.Fatalf("%s exited before it was ready", r.p.label)
		case <-ctx.Done():
			report()
			t.Fatalf("%s was not ready within %v", r.p.label, interopTimeout)
		}
	}
	// The peers' registrations and subscriptions have reached every node
	// before the drivers start (registration ids are the same on every
	// node; subscriptions are answered for the whole mesh).
	waitMeshSettled(t, ps...)
	for _, r := range drivers {
		if err := r.start(ctx); err != nil {
			t.Fatalf("%s: %v", r.p.label, err)
		}
	}
	for _, r := range drivers {
		<-r.exited
	}
	if len(peers) > 0 {
		s := ps[0].dial(ps[0].ws(), proto.JSON)
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.Publish(pctx, "interop.stop", nil, nil, &client.PublishOptions{Acknowledge: true})
		pcancel()
		if err != nil {
			t.Errorf("publishing interop.stop: %v", err)
		}
		for _, r := range peers {
			<-r.exited
		}
		s.Close()
	}
	report()
}

// waitMeshSettled waits until every node lists the same registrations,
// and gives subscription interest a moment to spread.
func waitMeshSettled(t *testing.T, ps ...*meshProc) {
	t.Helper()
	var ss []*client.Session
	for _, p := range ps {
		s := p.dial(p.ws(), proto.MsgPack)
		defer s.Close()
		ss = append(ss, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	list := func(s *client.Session) []string {
		res, err := s.Call(ctx, "wamp.registration.list", nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, v := range res.Args[0].(map[string]any) {
			for _, id := range v.([]any) {
				ids = append(ids, fmt.Sprint(id))
			}
		}
		slices.Sort(ids)
		return ids
	}
	meshEventually(t, 20*time.Second, func() error {
		first := list(ss[0])
		for i, s := range ss[1:] {
			if got := list(s); !slices.Equal(got, first) {
				return fmt.Errorf("node %d lists %v, node 0 %v", i+1, got, first)
			}
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
}

// TestMeshInteropDeepRetainedKill: Autobahn|Python sessions on two nodes
// (x-mesh-deep) against this sitting's mesh changes: subscriptions of 20
// components, exact, prefix and wildcard (NATS interest in their first 15
// components and '>', ac9042a), get each event from the other node once
// and none of the topics sharing their first components only; deep
// retained events reach get_retained subscriptions of every match policy
// on the other node, and a retained event replaced from the other node is
// the one both nodes give (8106d9d); wamp.session.kill_by_authid of the
// other node's session answers the list of the sessions killed (48f8855,
// 2b718b9), [] for none.
func TestMeshInteropDeepRetainedKill(t *testing.T) {
	interopNeeds(t, "python")
	t.Parallel()
	ps := processCluster(t, nil, "a", "b")
	logs := func() string { return ps[0].logs() + ps[1].logs() }
	runInteropProcs(t, []interopProc{abpy(ps[0].addr, "ws", "json", "x-mesh-deep", "--url2", ps[1].ws())}, logs)
}

// TestMeshInteropCallerQuarterRefused: an Autobahn|Python caller on A past
// its client's quarter of mesh.max_invocations (78754ce; 8 here, so 2)
// calling a Go callee on B gets wamp.error.unavailable at once, with a
// message naming the bound, for the calls past it (x-mesh-quarter), and
// the quarter is free again once the callee answers.
func TestMeshInteropCallerQuarterRefused(t *testing.T) {
	interopNeeds(t, "python")
	t.Parallel()
	cfg := writeFile(t, "quarter.yaml", "mesh:\n  max_invocations: 8\nrealms:\n  - {name: realm1, anonymous: true, anonymous_role: anonymous}\n")
	ps := processCluster(t, func(int) []string { return []string{"-config", cfg} }, "a", "b")
	callee := ps[1].dial(ps[1].ws(), proto.CBOR)
	defer callee.Close()
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	release := make(chan struct{})
	var once sync.Once
	if _, err := callee.Subscribe(ctx, "q.release", func(*client.Event) { once.Do(func() { close(release) }) }, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := callee.Register(ctx, "q.hold", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		select {
		case <-release:
			return &client.Result{Args: inv.Args}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, nil); err != nil {
		t.Fatal(err)
	}
	waitMeshSettled(t, ps...)
	logs := func() string { return ps[0].logs() + ps[1].logs() }
	runInteropProcs(t, []interopProc{abpy(ps[0].addr, "ws", "json", "x-mesh-quarter")}, logs)
}
