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
	ps := processCluster(t, nil, "a", "b", "c")
	a, b, c := ps[0], ps[1], ps[2]

	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonBin(), "failover_callee.py", "--url", b.ws(), "--url", c.ws(), "--serializer", "cbor")
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
			t.Logf("python stderr:\n%s", tail(stderr.String(), 30))
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
				t.Fatalf("python callee exited waiting for %s", what)
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatalf("python callee: no %s within 30 s", what)
		}
		return nil
	}
	if m := next("join on B"); m["joined"] != "tcp4:"+b.addr {
		t.Fatalf("python callee: want joined tcp4:%s, got %v", b.addr, m)
	}

	s := a.dial(a.ws(), proto.JSON)
	defer s.Close()
	if res, _ := callWhenKnown(t, s, "com.failover.who", nil); len(res.Args) != 1 || res.Args[0] != "tcp4:"+b.addr {
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
		t.Fatalf("python callee: want invoked slow, got %v", m)
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
	if m["joined"] != "tcp4:"+c.addr {
		t.Fatalf("python callee after the kill: want joined tcp4:%s, got %v", c.addr, m)
	}
	meshEventually(t, 15*time.Second, func() error {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		res, err := s.Call(cctx, "com.failover.who", nil, nil, nil)
		if err != nil {
			return err
		}
		if len(res.Args) != 1 || res.Args[0] != "tcp4:"+c.addr {
			t.Fatalf("who after the failover: %v", res.Args)
		}
		return nil
	})
}
