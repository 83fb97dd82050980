package route_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// stepClock is a clock that stands still until the test moves it: the
// walk budget refills only then (Config.Now).
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func newStepClock() *stepClock { return &stepClock{t: time.Now()} }

func (c *stepClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// clockedLoops runs a router on clk (its realms those of mutate's
// configuration, else realm1, open) on real event loops on a loopback
// port; dial joins realm1 there with the client library.
type clockedLoops struct {
	t    *testing.T
	r    *route.Router
	addr string
}

func startClockedLoops(t *testing.T, shards int, clk *stepClock, mutate func(*route.Config)) *clockedLoops {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: shards, Logger: quiet, Now: clk.now}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := route.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	return &clockedLoops{t: t, r: r, addr: e.Addrs()[0].String()}
}

func (cl *clockedLoops) dialWith(cfg client.Config) *client.Session {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg.URL = "rs://" + cl.addr
	if cfg.Realm == "" {
		cfg.Realm = "realm1"
	}
	cfg.Serializer = proto.MsgPack
	s, err := client.Dial(ctx, cfg)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.t.Cleanup(func() { s.Close() })
	return s
}

func (cl *clockedLoops) dial() *client.Session { return cl.dialWith(client.Config{}) }

// pendingCalls makes n calls of proc at once from s, each in its own
// goroutine, and returns a channel that receives each one's outcome as it
// comes.
func pendingCalls(ctx context.Context, s *client.Session, n int, proc string, args []any) <-chan error {
	out := make(chan error, n)
	for range n {
		go func() {
			_, err := s.Call(ctx, proc, args, nil, nil)
			out <- err
		}()
	}
	return out
}

// answeredWithin counts the outcomes ch gives within d, up to want,
// failing t at an error.
func answeredWithin(t *testing.T, ch <-chan error, want int, d time.Duration) int {
	t.Helper()
	n := 0
	timer := time.NewTimer(d)
	defer timer.Stop()
	for n < want {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			n++
		case <-timer.C:
			return n
		}
	}
	return n
}

// answeredAsClockMoves moves clk a second at a time (the budget refills)
// until ch has given want outcomes, for at most 10 s, and returns how
// many it gave.
func answeredAsClockMoves(t *testing.T, clk *stepClock, ch <-chan error, want int) int {
	t.Helper()
	n := 0
	for deadline := time.Now().Add(10 * time.Second); n < want && time.Now().Before(deadline); {
		clk.add(time.Second)
		n += answeredWithin(t, ch, want-n, 50*time.Millisecond)
	}
	return n
}
