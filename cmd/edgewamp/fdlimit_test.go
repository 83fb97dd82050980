package main

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A flood of idle connections past the open-file limit must not stop the
// router (gnet stops its whole engine when accept fails with EMFILE): the
// connections past the budget are closed, the sessions already there keep
// working, and once the flood is gone new sessions join again.
func TestConnectionFloodPastOpenFileLimit(t *testing.T) {
	const nofile = 160
	r := launch(t, exec.Command("sh", "-c", `ulimit -n `+strconv.Itoa(nofile)+` && exec "$0" "$@"`,
		binPath, "run", "-listen", "127.0.0.1:0", "-gateway-listen", "off"))
	m := regexp.MustCompile(`connection_capacity=(\d+)`).FindStringSubmatch(r.logs())
	if m == nil {
		t.Fatalf("no connection_capacity in the log:\n%s", r.logs())
	}
	capacity, _ := strconv.Atoi(m[1])
	if capacity <= 0 || capacity >= nofile {
		t.Fatalf("connection_capacity %d under a limit of %d", capacity, nofile)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	callee := r.dial("rs://"+r.addr, proto.MsgPack)
	defer callee.Close()
	if _, err := callee.Register(ctx, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := r.dial("ws://"+r.addr+"/ws", proto.JSON)
	defer caller.Close()

	// Twice the limit, sending nothing; the router may close any of them.
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for range 2 * nofile {
		c, err := net.DialTimeout("tcp", r.addr, 2*time.Second)
		if err != nil {
			continue // the backlog is full: the kernel drops the SYN
		}
		flood = append(flood, c)
	}
	// The router closes what is past its budget; count those.
	closed := 0
	buf := make([]byte, 1)
	for _, c := range flood {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				closed++
			}
		}
	}
	if closed == 0 {
		t.Errorf("none of %d connections past a budget of %d was closed", len(flood), capacity)
	}
	for i := range 5 {
		res, err := caller.Call(ctx, "com.echo", []any{i}, nil, nil)
		if err != nil || len(res.Args) != 1 || res.Args[0] != int64(i) {
			t.Fatalf("call %d during the flood: %v, %v\n%s", i, res, err, r.logs())
		}
	}
	for _, c := range flood {
		c.Close()
	}
	flood = nil

	// The budget frees up as the router sees the closes.
	var late *client.Session
	deadline := time.Now().Add(20 * time.Second)
	for late == nil {
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := client.Dial(dctx, client.Config{URL: "ws://" + r.addr + "/ws", Realm: "realm1", Serializer: proto.CBOR})
		dcancel()
		if err == nil {
			late = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session could join after the flood: %v\n%s", err, r.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer late.Close()
	if res, err := late.Call(ctx, "com.echo", []any{"after"}, nil, nil); err != nil || res.Args[0] != "after" {
		t.Fatalf("call after the flood: %v, %v", res, err)
	}
	select {
	case err := <-r.done:
		t.Fatalf("router exited: %v\n%s", err, r.logs())
	default:
	}
}
