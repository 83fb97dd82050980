package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshInteropFailoverPythonCallee kills (SIGKILL) the node under an
// Autobahn|Python callee that uses Autobahn's automatic reconnection
// (Component with the dead node's and another node's URL): the caller on
// a third node sees its call in flight end wamp.error.canceled (README,
// "When things fail"), the callee reconnects to the other node and
// registers its procedures again (invoke single: the dead node's claim
// must not refuse them), and the caller reaches it there.
func TestMeshInteropFailoverPythonCallee(t *testing.T) {
	interopNeeds(t, "python")
	runFailoverCallee(t, "python callee", func(b, c *meshProc) []string {
		return []string{pythonBin(), "failover_callee.py", "--url", b.ws(), "--url", c.ws(), "--serializer", "cbor"}
	}, func(p *meshProc) string { return "tcp4:" + p.addr })
}

// TestMeshInteropFailoverJSCallee: the same with an Autobahn|JS callee,
// which moves to the next node itself (a Connection's transports are not
// a list of routers in Autobahn|JS: see failover_callee.js and README's
// interop notes); the single REGISTERs it sends on C as soon as B is gone
// must not be refused for the dead node's claims.
func TestMeshInteropFailoverJSCallee(t *testing.T) {
	interopNeeds(t, "node")
	runFailoverCallee(t, "autobahn-js callee", func(b, c *meshProc) []string {
		return []string{"node", "failover_callee.js", "--url", b.ws(), "--url", c.ws(), "--serializer", "msgpack"}
	}, func(p *meshProc) string { return p.ws() })
}

// runFailoverCallee runs the failover scenario with the callee process
// argv starts (given nodes b and c); joinedAs is how the callee names the
// node it joined.
func runFailoverCallee(t *testing.T, label string, argv func(b, c *meshProc) []string, joinedAs func(*meshProc) string) {
	ps := processCluster(t, nil, "a", "b", "c")
	a, b, c := ps[0], ps[1], ps[2]

	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	args := argv(b, c)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = interopDir
	var stderr bytes.Buffer
	var mu sync.Mutex
	cmd.Stderr = &lockedWriter{mu: &mu, w: &stderr}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("%s stderr:\n%s", label, tail(stderr.String(), 30))
			mu.Unlock()
			for _, p := range []*meshProc{a, c} {
				t.Logf("%s log (tail):\n%s", p.name, tail(p.logs(), 25))
			}
		}
	}()
	lines := make(chan map[string]any, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
	}()
	next := func(what string) map[string]any {
		t.Helper()
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("%s exited waiting for %s", label, what)
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no %s within 30 s", label, what)
		}
		return nil
	}
	if m := next("join on B"); m["joined"] != joinedAs(b) {
		t.Fatalf("%s: want joined %s, got %v", label, joinedAs(b), m)
	}

	s := a.dial(a.ws(), proto.JSON)
	defer s.Close()
	if res, _ := callWhenKnown(t, s, "com.failover.who", nil); len(res.Args) != 1 || res.Args[0] != joinedAs(b) {
		t.Fatalf("who before the kill: %v", res.Args)
	}
	slow := make(chan error, 1)
	go func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		_, err := s.Call(cctx, "com.failover.slow", nil, nil, nil)
		slow <- err
	}()
	if m := next("invocation of slow"); m["invoked"] != "slow" {
		t.Fatalf("%s: want invoked slow, got %v", label, m)
	}

	b.kill(t)
	select {
	case err := <-slow:
		if got := wampURI(err); got != proto.URICanceled {
			t.Errorf("call in flight to the dead node's callee ended %q, want %s", got, proto.URICanceled)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("call in flight to the dead node's callee did not end within 30 s")
	}

	m := next("join on C")
	if m["joined"] != joinedAs(c) {
		t.Fatalf("%s after the kill: want joined %s, got %v", label, joinedAs(c), m)
	}
	meshEventually(t, 15*time.Second, func() error {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		res, err := s.Call(cctx, "com.failover.who", nil, nil, nil)
		if err != nil {
			return err
		}
		if len(res.Args) != 1 || res.Args[0] != joinedAs(c) {
			t.Fatalf("who after the failover: %v", res.Args)
		}
		return nil
	})
}
