package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestInteropProgressiveInvocations: wampy's progressiveCall (progressive
// call invocations: CALL chunks with Options.progress) to a callee of the
// Go client, the only callee at hand that takes them (Autobahn|JS 22.11.1
// and Autobahn|Python 22.7.1 have neither side), on one router and with
// the callee on another node of a mesh, over each serializer wampy has.
// The callee registers pi.collect (answers with every chunk's arguments in
// order) and pi.echo (a progressive result per chunk, then the count).
func TestInteropProgressiveInvocations(t *testing.T) {
	interopNeeds(t, "node")
	t.Run("one-node", func(t *testing.T) {
		t.Parallel()
		rt := startRouter(t)
		callee := rt.dial("ws://"+rt.addr+"/ws", proto.MsgPack)
		defer callee.Close()
		var ended atomic.Int32
		registerProgInv(t, callee, &ended)
		sers := []string{"json", "msgpack", "cbor"}
		for _, ser := range sers {
			runInteropProcs(t, []interopProc{wampy(rt.addr, ser, "x-proginv")}, rt.logs)
		}
		waitInterrupted(t, &ended, len(sers))
	})
	t.Run("mesh", func(t *testing.T) {
		t.Parallel()
		ps := processCluster(t, nil, "a", "b")
		callee := ps[1].dial(ps[1].ws(), proto.CBOR)
		defer callee.Close()
		var ended atomic.Int32
		registerProgInv(t, callee, &ended)
		waitMeshSettled(t, ps...)
		logs := func() string { return ps[0].logs() + ps[1].logs() }
		sers := []string{"json", "cbor"}
		for _, ser := range sers {
			runInteropProcs(t, []interopProc{wampy(ps[0].addr, ser, "x-proginv")}, logs)
		}
		waitInterrupted(t, &ended, len(sers))
	})
}

// waitInterrupted waits until the callee's handlers of want timed-out
// calls (one per run of the x-proginv mode) have been interrupted.
func waitInterrupted(t *testing.T, ended *atomic.Int32, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ended.Load() < int32(want) {
		if time.Now().After(deadline) {
			t.Fatalf("the callee was interrupted %d times; want %d (one per timed-out progressive call)", ended.Load(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// registerProgInv registers pi.collect and pi.echo on s; ended counts the
// handlers ended by an INTERRUPT (their context canceled).
func registerProgInv(t *testing.T, s *client.Session, ended *atomic.Int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	collect := func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		got := append([]any{}, inv.Args...)
		for {
			c, err := inv.Next(ctx)
			if errors.Is(err, io.EOF) {
				return &client.Result{Args: got}, nil
			}
			if err != nil {
				if ctx.Err() != nil {
					ended.Add(1)
				}
				return nil, err
			}
			got = append(got, c.Args...)
		}
	}
	echo := func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		n := 1
		if err := inv.SendProgress(inv.Args, nil); err != nil {
			return nil, err
		}
		for {
			c, err := inv.Next(ctx)
			if errors.Is(err, io.EOF) {
				return &client.Result{Args: []any{n}}, nil
			}
			if err != nil {
				return nil, err
			}
			n++
			if err := inv.SendProgress(c.Args, nil); err != nil {
				return nil, err
			}
		}
	}
	for uri, h := range map[string]client.Handler{"pi.collect": collect, "pi.echo": echo} {
		if _, err := s.Register(ctx, uri, h, nil); err != nil {
			t.Fatalf("register %s: %v", uri, err)
		}
	}
	// pi.ppt. (a prefix, forwarding timeouts): one line per chunk, what
	// its INVOCATION.Details said of the call (procedure, timeout and the
	// ppt_* keys, frozen from the first CALL) and its first argument (the
	// caller's payload, passed through).
	ppt := func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		line := func(c *client.Invocation) any {
			return map[string]any{
				"procedure": c.Details["procedure"], "timeout": c.Details["timeout"],
				"ppt_scheme": c.Details["ppt_scheme"], "ppt_serializer": c.Details["ppt_serializer"],
				"ppt_keyid": c.Details["ppt_keyid"], "args": c.Args,
			}
		}
		got := []any{line(inv)}
		for {
			c, err := inv.Next(ctx)
			if errors.Is(err, io.EOF) {
				return &client.Result{Args: got}, nil
			}
			if err != nil {
				return nil, err
			}
			got = append(got, line(c))
		}
	}
	if _, err := s.Register(ctx, "pi.ppt.", ppt, &client.RegisterOptions{Match: "prefix", ForwardTimeout: true}); err != nil {
		t.Fatalf("register pi.ppt.: %v", err)
	}
}

// runInteropProcs runs client processes side by side to completion and
// reports their checks.
func runInteropProcs(t *testing.T, procs []interopProc, logs func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	var runs []*interopRun
	for _, p := range procs {
		r := &interopRun{p: p}
		if err := r.start(ctx); err != nil {
			t.Fatalf("%s: %v", p.label, err)
		}
		runs = append(runs, r)
	}
	for _, r := range runs {
		<-r.exited
		reportInterop(t, r)
	}
	if l := logs(); strings.Contains(l, "panic") || strings.Contains(l, "DATA RACE") {
		t.Errorf("router log shows a panic:\n%s", l)
	}
	if t.Failed() {
		t.Logf("router log (tail):\n%s", tail(logs(), 40))
	}
}
