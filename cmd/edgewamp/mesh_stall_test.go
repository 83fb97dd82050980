package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A node that stops answering (SIGSTOP: a long GC pause, a frozen VM)
// for less than the peer timeout is still a peer: meta calls of the
// other nodes go without its answers. A wamp.session.get or kill of one
// of its sessions then answers wamp.error.unavailable naming it, not
// no_such_session; a session id of a node that did answer is still "no
// such session"; once the node runs again, its session is found, and the
// kill it got while stopped is not carried out.
func TestMeshStalledNodeAnswersUnavailable(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "listeners: [{address: 127.0.0.1:0}]\nrealms: [{name: realm1, anonymous: true}]\nmesh: {peer_timeout: 8s, gather_timeout: 300ms}\n")
	ps := processCluster(t, func(int) []string { return []string{"-config", cfg} }, "sa", "sb", "sc")
	a, c := ps[0], ps[2]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	onC := c.dial(c.ws(), proto.MsgPack)
	caller := a.dial(a.ws(), proto.JSON)
	get := func(id uint64) error {
		_, err := caller.Call(ctx, "wamp.session.get", []any{id}, nil, nil)
		return err
	}
	meshEventually(t, 10*time.Second, func() error { return get(onC.ID()) })

	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := func() { c.cmd.Process.Signal(syscall.SIGCONT) }
	t.Cleanup(cont)
	// kill(2) returns before every thread has stopped: a thread running
	// elsewhere stops when it next enters the kernel. Under load (CI, the
	// race detector) sc once answered a query sent right after it.
	waitStopped(t, c.cmd.Process.Pid)
	stopped := time.Now()
	err := get(onC.ID())
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URIUnavailable || len(we.Args) == 0 || !strings.Contains(fmt.Sprint(we.Args[0]), "node sc did not answer") {
		t.Fatalf("session.get of sc's session with sc stopped: %v, want %s naming sc", err, proto.URIUnavailable)
	}
	_, err = caller.Call(ctx, "wamp.session.kill", []any{onC.ID()}, nil, nil)
	if wampURI(err) != proto.URIUnavailable {
		t.Fatalf("session.kill of sc's session with sc stopped: %v, want %s", err, proto.URIUnavailable)
	}
	onB := uint64(4242)<<10 | uint64(route.MeshSlot("sb"))
	if onB&route.MaxMeshSlot == uint64(route.MeshSlot("sc")) {
		t.Fatal("sb and sc share a slot")
	}
	if err := get(onB); wampURI(err) != proto.URINoSuchSession {
		t.Fatalf("session.get of an id on sb's slot with sc stopped: %v, want %s", err, proto.URINoSuchSession)
	}
	if d := time.Since(stopped); d > 6*time.Second {
		t.Fatalf("the calls took %v, past most of the peer timeout: a slow machine, not a result", d)
	}
	t.Logf("with sc stopped for %v: unavailable, unavailable, no_such_session", time.Since(stopped).Round(time.Millisecond))

	cont()
	// The kill sent while it was stopped waits in sc's queue; it comes too
	// late to count (its caller heard unavailable), so sc does not carry
	// it out: the session is found again and stays.
	meshEventually(t, 10*time.Second, func() error { return get(onC.ID()) })
	// sc got the kill, and refused it for its lateness (not lost on the way).
	meshEventually(t, 10*time.Second, func() error {
		if !strings.Contains(c.logs(), "came after their askers had stopped waiting") {
			return errors.New("sc logged no late meta query")
		}
		return nil
	})
	select {
	case <-onC.Done():
		t.Fatal("sc carried out a kill its caller had been answered unavailable for")
	case <-time.After(500 * time.Millisecond):
	}
	if err := get(onC.ID()); err != nil {
		t.Fatalf("session.get of sc's session after it ran again: %v", err)
	}
}

// waitStopped waits until every thread of process pid is stopped (state
// T in /proc/pid/task/*/stat).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	meshEventually(t, 10*time.Second, func() error {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			return fmt.Errorf("no threads of %d: %v", pid, err)
		}
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			// "pid (comm) S ...": the state follows the last ')'.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				return fmt.Errorf("%s not stopped yet", f)
			}
		}
		return nil
	})
}
