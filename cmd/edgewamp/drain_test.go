package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshSIGTERMDrainsCallsInFlight: SIGTERM to one node of a
// three-process mesh while calls run on its callee. The calls in flight,
// from a caller on another node and from one on the stopping node,
// complete with their results; calls made during the drain to a
// registration shared with another node are served there; then the node
// says GOODBYE and exits 0 without reaching its drain's deadline. Before,
// every session got GOODBYE at once: the caller on the other node got
// wamp.error.canceled ("the callee left while the call was in progress")
// within a millisecond of the signal.
func TestMeshSIGTERMDrainsCallsInFlight(t *testing.T) {
	t.Parallel()
	ps := processCluster(t, nil, "a", "b", "c")
	a, b, c := ps[0], ps[1], ps[2]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	calleeA := a.dial(a.ws(), proto.JSON)
	calleeB := b.dial(b.rs(), proto.MsgPack)
	defer calleeB.Close()
	for _, x := range []struct {
		s    *client.Session
		name string
	}{{calleeA, "A"}, {calleeB, "B"}} {
		name := x.name
		if _, err := x.s.Register(ctx, "com.shared", func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{name}}, nil
		}, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := calleeA.Register(ctx, "com.onlya", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 8)
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	defer open()
	if _, err := calleeA.Register(ctx, "com.slow", func(context.Context, *client.Invocation) (*client.Result, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
		time.Sleep(300 * time.Millisecond) // still running when it may answer
		return &client.Result{Args: []any{"slow done"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	callerC := c.dial(c.ws(), proto.CBOR)
	defer callerC.Close()
	callerA := a.dial(a.rs(), proto.JSON)
	seen := map[string]bool{}
	meshEventually(t, 15*time.Second, func() error {
		res, err := callerC.Call(ctx, "com.shared", nil, nil, nil)
		if err == nil && len(res.Args) == 1 {
			seen[fmt.Sprint(res.Args[0])] = true
		}
		if !seen["A"] || !seen["B"] {
			return fmt.Errorf("com.shared answered by %v (%v)", seen, err)
		}
		return nil
	})
	callWhenKnown(t, callerC, "com.onlya", nil)

	type outcome struct {
		res *client.Result
		err error
	}
	call := func(s *client.Session) <-chan outcome {
		ch := make(chan outcome, 1)
		go func() {
			res, err := s.Call(ctx, "com.slow", nil, nil, nil)
			ch <- outcome{res, err}
		}()
		return ch
	}
	fromC, fromA := call(callerC), call(callerA)
	for range 2 {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatalf("the slow calls did not reach A's callee\n%s", a.logs())
		}
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The drain has begun once A's callees take no new call.
	meshEventually(t, 10*time.Second, func() error {
		_, err := callerA.Call(ctx, "com.onlya", nil, nil, nil)
		if wampURI(err) != proto.URINoAvailableCallee {
			return fmt.Errorf("a call to A's only callee from A after SIGTERM: %v", err)
		}
		return nil
	})
	for i := range 4 {
		s := callerC
		if i%2 == 1 {
			s = callerA
		}
		res, err := s.Call(ctx, "com.shared", nil, nil, nil)
		if err != nil || len(res.Args) != 1 || res.Args[0] != "B" {
			t.Fatalf("call %d of com.shared during A's drain: %v %v, want B's answer\n%s", i, res, err, a.logs())
		}
	}
	open()
	for _, ch := range []<-chan outcome{fromC, fromA} {
		o := <-ch
		if o.err != nil || len(o.res.Args) != 1 || o.res.Args[0] != "slow done" {
			t.Fatalf("a call in flight at SIGTERM: %v %v, want its result\n%s", o.res, o.err, a.logs())
		}
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("A's exit after SIGTERM: %v\n%s", err, a.logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("A still runs 20 s after its calls ended\n%s", a.logs())
	}
	if !strings.Contains(a.logs(), "drained: no call in progress") {
		t.Fatalf("A's log does not say the drain ended with no call in progress:\n%s", a.logs())
	}
	// A's sessions ended after the drain.
	if _, err := callerA.Call(ctx, "com.shared", nil, nil, nil); err == nil {
		t.Fatal("a call on A's session answered after A stopped")
	}
}

// TestShutdownDrainTimeoutConfig: shutdown.drain_timeout is 10 s by
// default, 0s turns the drain off, and more than 10m is refused.
func TestShutdownDrainTimeoutConfig(t *testing.T) {
	for _, k := range []struct {
		body string
		want time.Duration
		err  string
	}{
		{"realms: [{name: a}]\n", 10 * time.Second, ""},
		{"shutdown: {drain_timeout: 0s}\n", 0, ""},
		{"shutdown: {drain_timeout: 25s}\n", 25 * time.Second, ""},
		{"shutdown: {drain_timeout: 11m}\n", 0, "shutdown.drain_timeout must be at most 10m"},
	} {
		c, err := parseConfig([]byte(k.body), nil)
		if err == nil {
			err = c.validate()
		}
		if k.err != "" {
			if err == nil || !strings.Contains(err.Error(), k.err) {
				t.Errorf("%q: %v, want %q", k.body, err, k.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", k.body, err)
		}
		if got := time.Duration(c.Shutdown.DrainTimeout); got != k.want {
			t.Errorf("%q: drain_timeout %v, want %v", k.body, got, k.want)
		}
	}
}

// TestSIGTERMDrainSecondSignalExitsAtOnce: on one router, a call its
// callee never answers holds the drain (shutdown.drain_timeout, 10 s by
// default) and the session stays; a second SIGTERM ends the process at
// once, status 1.
func TestSIGTERMDrainSecondSignalExitsAtOnce(t *testing.T) {
	r := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callee := r.dial("rs://"+r.addr, proto.MsgPack)
	defer callee.Close()
	held := make(chan struct{}, 1)
	if _, err := callee.Register(ctx, "com.never", func(ictx context.Context, _ *client.Invocation) (*client.Result, error) {
		held <- struct{}{}
		<-ictx.Done()
		return nil, ictx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := r.dial("ws://"+r.addr+"/ws", proto.JSON)
	defer caller.Close()
	go caller.Call(ctx, "com.never", nil, nil, nil)
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the call did not reach the callee")
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.waitLog("shutting down", 1)
	// The drain holds: the callee is told no new calls, its session stays.
	meshEventually(t, 10*time.Second, func() error {
		_, err := caller.Call(ctx, "com.never", nil, nil, nil)
		if wampURI(err) != proto.URINoAvailableCallee {
			return fmt.Errorf("a new call during the drain: %v", err)
		}
		return nil
	})
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err == nil {
			t.Fatalf("exit status 0 after a second SIGTERM, want 1\n%s", r.logs())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("still running 5 s after a second SIGTERM during the drain\n%s", r.logs())
	}
	if !strings.Contains(r.logs(), "second stop signal") {
		t.Fatalf("no line for the second signal:\n%s", r.logs())
	}
}

// TestSIGTERMDrainWaitsForGatewayCallee: on one router, a WAMP call in
// progress on one of the gateway's HTTP callees (its upstream still
// answering) when SIGTERM comes completes with its result, as the drain
// promises for every callee of the node; a new HTTP request meanwhile is
// answered 503 with Retry-After (or its connection refused). Before, the
// gateway's shutdown ran beside the drain and, with no HTTP request in
// progress, stopped its callees at once: their sessions left and the
// caller got wamp.error.canceled while the drain went on waiting.
func TestSIGTERMDrainWaitsForGatewayCallee(t *testing.T) {
	started := make(chan struct{}, 8)
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`"slow done"`))
	}))
	t.Cleanup(upstream.Close)
	t.Cleanup(open)
	g := startReloadedGateway(t, runnersYAML([]string{`{realm: realm1, procedure: com.example.slow, url: "` + upstream.URL + `", timeout: 20s}`}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	caller := g.dial("ws://"+g.addr+"/ws", proto.JSON)
	defer caller.Close()
	type outcome struct {
		res *client.Result
		err error
	}
	out := make(chan outcome, 1)
	go func() {
		for {
			res, err := caller.Call(ctx, "com.example.slow", nil, nil, nil)
			if wampURI(err) == proto.URINoSuchProcedure && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond) // the callee registers
				continue
			}
			out <- outcome{res, err}
			return
		}
	}()
	select {
	case <-started:
	case o := <-out:
		t.Fatalf("the call ended before reaching the upstream: %v %v\n%s", o.res, o.err, g.logs())
	case <-ctx.Done():
		t.Fatalf("the call did not reach the upstream\n%s", g.logs())
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	g.waitLog("shutting down", 1)
	// A new HTTP request: refused, saying when to come back.
	if resp, err := g.hc.Post(g.base+"/wamp/realm1/publish", "application/json", strings.NewReader(`{"topic":"com.x"}`)); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !resp.Close {
			t.Errorf("a new HTTP request during the drain: %d Retry-After %q close %v, want 503, Retry-After, Connection: close",
				resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
		}
	}
	// The gateway's stop has had its moment to cut the callee.
	select {
	case o := <-out:
		t.Fatalf("the call in progress on the gateway's callee ended during the drain: %v %v, want its result\n%s", o.res, o.err, g.logs())
	case <-time.After(500 * time.Millisecond):
	}
	open()
	o := <-out
	if o.err != nil || len(o.res.Args) != 1 || o.res.Args[0] != "slow done" {
		t.Fatalf("a call in progress at SIGTERM on the gateway's callee: %v %v, want its result\n%s", o.res, o.err, g.logs())
	}
	select {
	case err := <-g.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, g.logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after the call ended\n%s", g.logs())
	}
	if !strings.Contains(g.logs(), "drained: no call in progress") {
		t.Fatalf("the log does not say the drain ended with no call in progress:\n%s", g.logs())
	}
}
