package client

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/internal/clocktest"
	"github.com/edgewamp/edgewamp/proto"
)

// wallStepped and checkWallStepped are internal/clocktest's: a time.Now
// reading whose wall clock is stepped by d, its monotonic reading kept.
func wallStepped(t time.Time, d time.Duration) time.Time { return clocktest.WallStepped(t, d) }

func checkWallStepped(t *testing.T) { clocktest.SkipUnlessSteppable(t) }

// stepClock reads time.Now, plus adv on both readings (when the test
// drives time itself), with the wall clock alone moved by step, as a step
// of the system clock moves it. It counts its reads after the step.
type stepClock struct {
	adv, step atomic.Int64
	reads     atomic.Int64
}

func (c *stepClock) now() time.Time {
	c.reads.Add(1)
	return wallStepped(time.Now().Add(time.Duration(c.adv.Load())), time.Duration(c.step.Load()))
}

// The keepalive measures the router's silence on the monotonic clock: a
// step of the system clock (NTP's first sync on a device without a
// real-time clock, date -s, a VM resumed) neither ends a live session nor
// keeps a dead link's. Before, it compared the wall clock's UnixNano:
// stepped forward an hour, every session of the process ended with
// ErrKeepAlive at the keepalive's next tick (a fleet of devices all
// reconnecting at their first sync); stepped back an hour, a router that
// answered nothing went unnoticed for that hour.
func TestKeepAliveIgnoresWallClockSteps(t *testing.T) {
	checkWallStepped(t)
	t.Run("forward", func(t *testing.T) {
		// A real router, which answers the pings.
		url := startRouter(t)
		clk := &stepClock{}
		s, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack,
			KeepAlive: time.Second, KeepAliveTimeout: 2 * time.Second, now: clk.now})
		noErr(t, "Dial", err)
		t.Cleanup(func() { s.Close() })
		clk.step.Store(int64(time.Hour))
		clk.reads.Store(0)
		// The keepalive ticks every 500 ms, reading the clock once; the
		// only other reads are of the pongs to its pings, each after a
		// tick: four reads, at least three of them ticks after the step.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(10 * time.Second)
		for clk.reads.Load() < 4 {
			select {
			case <-s.Done():
				t.Fatalf("the session ended after the wall clock stepped an hour forward: %v", s.Err())
			case <-deadline:
				t.Fatalf("the keepalive read the clock %d times in 10 s", clk.reads.Load())
			case <-tick.C:
			}
		}
		if err := s.Err(); err != nil {
			t.Fatalf("the session ended after the wall clock stepped an hour forward: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		noErr(t, "Publish after the step", s.Publish(ctx, "com.example.t", nil, nil, &PublishOptions{Acknowledge: true}))
	})
	t.Run("back", func(t *testing.T) {
		// A scripted router that reads nothing: no ping is answered.
		clk := &stepClock{}
		s, _ := setup(t, "rs", proto.JSON, keepAlive, func(cfg *Config) { cfg.now = clk.now })
		clk.step.Store(int64(-time.Hour))
		select {
		case <-s.Done():
			if !errors.Is(s.Err(), ErrKeepAlive) {
				t.Fatalf("the session ended with %v, want ErrKeepAlive", s.Err())
			}
		case <-time.After(2 * wait):
			t.Fatal("a router silent for 10 s went unnoticed, with a keepalive of 100 + 100 ms, after the wall clock stepped an hour back")
		}
	})
}

// The session's rate-limited log lines are spaced on the monotonic clock
// too: stepped back an hour, the wall clock held every such line for that
// hour, not the 10 s of logEvery.
func TestLogLimitIgnoresWallClockSteps(t *testing.T) {
	checkWallStepped(t)
	var logs lockedBuf
	clk := &stepClock{}
	s, c := setup(t, "rs", proto.MsgPack, func(cfg *Config) {
		cfg.now = clk.now
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	got := make(chan *Event, 2)
	subscribe(t, s, c, "com.example.t", 9, func(ev *Event) { got <- ev }, nil)
	lines := func() int { return strings.Count(logs.String(), "Details over the decode budget") }
	for i := range 2 {
		c.send(&proto.Message{Type: proto.CodeEvent, ID: 9, ID2: uint64(i + 1), Dict: bigDetails(8 << 10), Args: c.raw([]any{i})})
		select {
		case <-got:
		case <-time.After(wait):
			t.Fatalf("event %d did not arrive", i)
		}
		if n := lines(); n != i+1 {
			t.Fatalf("%d lines after %d events over the Details budget, %d s apart, the wall clock stepped an hour back between them: want %d", n, i+1, logEvery/time.Second+1, i+1)
		}
		clk.step.Store(int64(-time.Hour))
		clk.adv.Add(int64(logEvery + time.Second))
	}
}

// The line of an INVOCATION refused past MaxInvocations (at most one per
// 10 s) is spaced on the monotonic clock too: stepped back an hour, the
// wall clock held it for the hour.
func TestBusyLogIgnoresWallClockSteps(t *testing.T) {
	checkWallStepped(t)
	url := startRouter(t)
	var logs lockedBuf
	clk := &stepClock{}
	callee, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxInvocations: 1, now: clk.now,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	noErr(t, "Dial callee", err)
	t.Cleanup(func() { callee.Close() })
	caller := dialRouter(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	started, release := make(chan struct{}, 1), make(chan struct{})
	_, err = callee.Register(ctx, "com.example.slow", func(ctx context.Context, _ *Invocation) (*Result, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &Result{}, nil
	}, nil)
	noErr(t, "Register", err)
	held := goDo(func() (*Result, error) { return caller.Call(ctx, "com.example.slow", nil, nil, nil) })
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the first call's handler did not start")
	}
	for i := range 2 {
		if _, err := caller.Call(ctx, "com.example.slow", nil, nil, nil); err == nil {
			t.Fatalf("call %d past MaxInvocations 1 answered", i+2)
		}
		if n := strings.Count(logs.String(), "refusing invocations past MaxInvocations"); n != i+1 {
			t.Fatalf("%d lines after %d refusals 11 s apart, the wall clock stepped an hour back between them: want %d", n, i+1, i+1)
		}
		clk.step.Store(int64(-time.Hour))
		clk.adv.Add(int64(11 * time.Second))
	}
	close(release)
	_, err = held.wait(t)
	noErr(t, "the first call", err)
}
