package loop

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Shutdown returns by its context's end also when an event loop is
// wedged (a callback stuck): it gave gnet's stop of the loops a fresh
// 10 s of its own once the context had run out on the sessions (which a
// wedged loop never lets close), so that Shutdown(ctx) outlasted ctx by
// 10 s (cmd/edgewamp worked around it, shutdownEngine). The stop is left
// going; once the loop runs again the loops stop and Done is closed.
func TestShutdownReturnsByContextWithWedgedLoop(t *testing.T) {
	s := startServer(t, func(o *Options, rc *route.Config) { rc.Shards = 2 })
	s.dial("rs", proto.MsgPack) // a session: its loop has a connection to close

	release := make(chan struct{})
	var wedged atomic.Int32
	for i := 0; i < s.r.Shards(); i++ {
		s.r.Shard(i).Do(func() { wedged.Add(1); <-release })
	}
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	eventually(t, 10*time.Second, "the wedging tasks run", func() bool { return wedged.Load() == int32(s.r.Shards()) })

	const window = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	began := time.Now()
	err := s.e.Shutdown(ctx)
	took := time.Since(began)
	// A bound on when it returns, not a measure of speed: without the
	// fix it took the window plus 10 s.
	if took > window+3*time.Second {
		t.Fatalf("Shutdown with a %v context and wedged loops returned after %v (%v)", window, took.Round(time.Millisecond), err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with wedged loops: %v, want the context's deadline", err)
	}
	select {
	case <-s.e.Done():
		t.Fatal("Done closed while the loops are wedged")
	default:
	}
	// Released, the loops stop: the stop left going ends them.
	close(release)
	select {
	case <-s.e.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the loops did not stop once released")
	}
}

// A healthy engine whose Shutdown context has run out (on sessions that
// did not close, or before Shutdown was called: cmd's window spent by the
// gateway's stop) is stopped when Shutdown returns: 5a86ff5 returned at
// once with its loops still running (a caller then closing what the
// loops' callbacks use, or leaving the mesh before the sessions'
// registrations were withdrawn), where Shutdown had waited for them.
func TestShutdownWithExpiredContextStopsHealthyLoops(t *testing.T) {
	s := startServer(t, func(o *Options, rc *route.Config) { rc.Shards = 2 })
	s.dial("rs", proto.MsgPack)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.e.Shutdown(ctx)
	select {
	case <-s.e.Done():
	default:
		t.Fatalf("Shutdown with a context already done returned (%v) before the healthy loops stopped", err)
	}
}
