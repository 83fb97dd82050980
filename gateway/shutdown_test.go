package gateway

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// httpSessions returns the ids of realm1's sessions that are the
// gateway's (transport "http"), as the meta API lists them.
func httpSessions(t *testing.T, e *env) []any {
	t.Helper()
	admin := e.dial("realm1", proto.JSON)
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []any
	for _, id := range metaIDs(t, admin, "wamp.session.list") {
		res, err := admin.Call(ctx, "wamp.session.get", []any{id}, nil, nil)
		if err != nil || len(res.Args) == 0 {
			continue // gone meanwhile
		}
		d, _ := res.Args[0].(map[string]any)
		if tr, _ := d["transport"].(map[string]any); tr["type"] == "http" {
			out = append(out, id)
		}
	}
	return out
}

// TestPoolSlotOpeningAtShutdownLeaves: a principal's session still being
// opened (its join queued on a busy event loop) when the gateway shuts
// down. closeAll took its slot away but could not make it leave (it had no
// session yet), and the join then completed: the router kept a session
// whose peer was gone, for good. Now the opening sees the shutdown, leaves
// (GOODBYE) and the request gets 503.
func TestPoolSlotOpeningAtShutdownLeaves(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	if n := len(httpSessions(t, e)); n != 0 {
		t.Fatalf("%d gateway sessions before", n)
	}
	release := holdLoops(t, e)
	type result struct {
		s    *sess
		a    admission
		prob *problem
	}
	got := make(chan result, 1)
	go func() {
		s, a, p := e.gw.pool.acquire(identity{realm: "realm1", authrole: "anonymous", method: "anonymous"}, "127.0.0.1:40000")
		got <- result{s, a, p}
	}()
	waitFor(t, "the slot opening", func() bool { return e.gw.pool.sessions() == 1 })
	e.gw.pool.closeAll() // what Shutdown does after the requests
	close(release)
	var r result
	select {
	case r = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("acquire did not return")
	}
	if r.prob == nil {
		e.gw.pool.release(r.a)
		t.Errorf("acquire during shutdown returned a session, want 503")
	} else if r.prob.status != 503 {
		t.Errorf("acquire during shutdown: %d %s", r.prob.status, r.prob.detail)
	}
	waitFor(t, "no gateway session left in the router", func() bool { return len(httpSessions(t, e)) == 0 })
}

// holdLoops holds every event loop until the returned channel is closed,
// so that a join waits in its queue.
func holdLoops(t *testing.T, e *env) chan struct{} {
	t.Helper()
	release := make(chan struct{})
	var held sync.WaitGroup
	for i := range e.r.Shards() {
		held.Add(1)
		if err := e.r.Shard(i).Do(func() { held.Done(); <-release }); err != nil {
			t.Fatal(err)
		}
	}
	held.Wait()
	return release
}

// TestPinnedSessionOpeningAtShutdownLeaves: as for a principal's slot, for
// a session an HTTP callee or webhook opens: closeAll's leave ran before
// the session was open, and did nothing.
func TestPinnedSessionOpeningAtShutdownLeaves(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	release := holdLoops(t, e)
	got := make(chan *problem, 1)
	go func() {
		_, p := e.gw.pool.openPinned(identity{realm: "realm1", authid: "hook", method: "static"}, 0, nil, nil, nil)
		got <- p
	}()
	waitFor(t, "the pinned session opening", func() bool { return e.gw.pool.sessions() == 1 })
	e.gw.pool.closeAll()
	close(release)
	select {
	case p := <-got:
		if p == nil || p.status != 503 {
			t.Errorf("openPinned during shutdown: %+v, want 503", p)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("openPinned did not return")
	}
	waitFor(t, "no gateway session left in the router", func() bool { return len(httpSessions(t, e)) == 0 })
}

// TestRequestDuringRouterDrainOpensSession: while the router drains (a
// stop: cmd drains the gateway beside it), a request the gateway took
// before its own drain and that needs a new pooled session (a principal
// it had none for) is served: the router lets the gateway's sessions
// join while it drains. Before, every session was refused from the
// drain's start, so such a request got 503 "the router is shutting down",
// though publications go on during the drain and the gateway had promised
// to finish it.
func TestRequestDuringRouterDrainOpensSession(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.eng.Drain(ctx); err != nil { // nothing in progress: at once
		t.Fatal(err)
	}
	resp, body := e.do("POST", "/wamp/realm1/publish/com.t", `{"args":[1],"options":{"acknowledge":true}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("a publish needing a new session during the router's drain: %d %s, want 200", resp.StatusCode, body)
	}
}

// TestStreamedCallEndsAtDrainDeadline: a call streamed as SSE runs on
// while the gateway drains (as a plain request in progress does) and,
// still running when the drain's context ends, is canceled at the router
// (its callee interrupted) with a problem event as the stream's last,
// saying the gateway shuts down, written before the connections close.
func TestStreamedCallEndsAtDrainDeadline(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	interrupted := make(chan struct{}, 1)
	e.register(callee, "com.tick", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		for i := 0; ; i++ {
			if err := inv.SendProgress([]any{i}, nil); err != nil {
				return nil, err
			}
			select {
			case <-ctx.Done():
				if context.Cause(ctx) == client.ErrInterrupted {
					interrupted <- struct{}{}
				}
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, sse := e.stream(ctx, "POST", "/wamp/realm1/call/com.tick", `{}`)
	if ev, err := sse.next(); err != nil || ev.event != "progress" {
		t.Fatalf("the streamed call's first event: %+v %v", ev, err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer dcancel()
	if err := e.gw.Drain(dctx); err == nil {
		t.Fatal("Drain returned no error with a streamed call running past its context")
	}
	var last sseEvent
	n := 0
	for {
		ev, err := sse.next()
		if err != nil {
			break
		}
		last = ev
		n++
	}
	if n < 5 || last.event != "problem" || !strings.Contains(last.data, proto.URISystemShutdown) {
		t.Fatalf("the streamed call during the drain: %d events more, the last %+v; want its progress to go on, then a problem with %s", n, last, proto.URISystemShutdown)
	}
	select {
	case <-interrupted:
	case <-time.After(10 * time.Second):
		t.Fatal("the callee of a streamed call ended at the drain's deadline was not interrupted")
	}
}
