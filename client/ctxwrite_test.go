package client

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// stuckWriter has s publish 1 MiB messages on its own goroutine until
// one is stuck for 200 ms: the peer reads nothing, the connection's
// buffers are full and the publishing goroutine holds the session's
// write lock. It returns once a write is stuck.
func stuckWriter(t *testing.T, s *Session) {
	t.Helper()
	noErr(t, "SetWriteBuffer", s.tr.(*rawSocket).conn.(*net.TCPConn).SetWriteBuffer(64<<10))
	big := strings.Repeat("x", 1<<20)
	var written atomic.Int64
	go func() {
		for s.Publish(context.Background(), "com.example.bulk", []any{big}, nil, nil) == nil {
			written.Add(1)
		}
	}()
	deadline := time.Now().Add(wait)
	n, since := written.Load(), time.Now()
	for time.Since(since) < 200*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("no write got stuck (%d publications written; session: %v)", n, s.Err())
		}
		time.Sleep(10 * time.Millisecond)
		if m := written.Load(); m != n {
			n, since = m, time.Now()
		}
	}
}

// A Call, an acknowledged Publish, a Subscribe and a Register whose
// context ends while another goroutine's write is stuck (a router that
// does not read) return the context's error when it ends, sending
// nothing, not when the stuck write times out (WriteTimeout, 3 s here)
// and ends the session.
func TestRequestsBoundedByContextBehindStuckWrite(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) { cfg.WriteTimeout = 3 * time.Second })
	stuckWriter(t, s)
	ops := map[string]func(context.Context) error{
		"Call": func(ctx context.Context) error {
			_, err := s.Call(ctx, "com.example.f", []any{1}, nil, nil)
			return err
		},
		"Publish": func(ctx context.Context) error {
			return s.Publish(ctx, "com.example.t", nil, nil, &PublishOptions{Acknowledge: true})
		},
		"Subscribe": func(ctx context.Context) error {
			_, err := s.Subscribe(ctx, "com.example.t", func(*Event) {}, nil)
			return err
		},
		"Register": func(ctx context.Context) error {
			_, err := s.Register(ctx, "com.example.f", func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
			return err
		},
	}
	type outcome struct {
		took time.Duration
		err  error
	}
	res := make(map[string]async[outcome])
	for name, op := range ops {
		res[name] = goDo(func() (outcome, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := op(ctx)
			return outcome{time.Since(start), err}, nil
		})
	}
	for name, a := range res {
		o, _ := a.wait(t)
		if !errors.Is(o.err, context.DeadlineExceeded) || o.took > time.Second {
			t.Errorf("%s with a 200 ms context behind a stuck write returned after %v: %v; want context.DeadlineExceeded within 1 s", name, o.took.Round(time.Millisecond), o.err)
		}
	}
	s.mu.Lock()
	pending := len(s.calls) + len(s.reqs)
	s.mu.Unlock()
	if pending != 0 && s.Err() == nil {
		t.Errorf("%d calls or requests left pending", pending)
	}
	c.conn.Close() // ends the stuck write and the session
	<-s.Done()
}

// Close behind a write stuck on a router that does not read returns
// within ReplyTimeout (300 ms here), ending the stuck write, where it
// waited for that write to time out (WriteTimeout, 3 s) before it could
// even send its GOODBYE.
func TestCloseBoundedBehindStuckWrite(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) {
		cfg.WriteTimeout = 3 * time.Second
		cfg.ReplyTimeout = 300 * time.Millisecond
	})
	stuckWriter(t, s)
	start := time.Now()
	done := goDo(func() (struct{}, error) { return struct{}{}, s.Close() })
	if done.pending(time.Second) {
		el := time.Since(start)
		done.wait(t)
		t.Errorf("Close behind a stuck write still waits %v later (returned after %v); want it within ReplyTimeout (300 ms)", el.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	if !errors.Is(s.Err(), ErrClosed) {
		t.Errorf("session error after Close: %v, want ErrClosed", s.Err())
	}
	c.conn.Close()
}

// A Call whose context ends while another goroutine's write is stuck
// waits for its CANCEL's turn to write no longer than ReplyTimeout (as
// for the router's answer to it), where the CANCEL waited for the stuck
// write to time out (WriteTimeout, 3 s) and the Call returned the
// session's end then.
func TestCallCancelBoundedBehindStuckWrite(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) {
		cfg.WriteTimeout = 3 * time.Second
		cfg.ReplyTimeout = 300 * time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var took time.Duration
	call := goDo(func() (*Result, error) {
		r, err := s.Call(ctx, "com.example.slow", nil, nil, nil)
		return r, err
	})
	c.expect(proto.CodeCall)
	stuckWriter(t, s)
	start := time.Now()
	cancel()
	_, err := call.wait(t)
	took = time.Since(start)
	if !errors.Is(err, context.Canceled) || took > time.Second {
		t.Errorf("Call canceled behind a stuck write returned after %v: %v; want context.Canceled within ReplyTimeout (300 ms)", took.Round(time.Millisecond), err)
	}
	c.conn.Close()
	<-s.Done()
}
