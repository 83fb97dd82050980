package loop

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/internal/clocktest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// wallStepped and checkWallStepped are internal/clocktest's: a time.Now
// reading whose wall clock is stepped by d, its monotonic reading kept.
func wallStepped(t time.Time, d time.Duration) time.Time { return clocktest.WallStepped(t, d) }

func checkWallStepped(t *testing.T) { clocktest.SkipUnlessSteppable(t) }

// The connection deadlines follow the monotonic clock, not the wall
// clock: a step of the system clock (NTP's first sync on a board without
// a real-time clock, which the unit starts before: After=
// network-online.target only; date -s; a VM resumed) neither fires every
// deadline at once nor holds them off for the step's length. Before, the
// engine's clock was Options.Now's UnixNano: stepped back an hour, a
// connection that sent half an HTTP header was held past
// handshake_timeout for that hour (and no keepalive ping, idle timeout,
// closing handshake or linger was judged meanwhile); stepped forward, an
// idle_timeout closed every session at the next scan, and every handshake
// under way, waiting pong and stalled holder was cut.
func TestDeadlinesIgnoreWallClockSteps(t *testing.T) {
	checkWallStepped(t)
	t.Parallel()
	start := func(idle time.Duration) (*testServer, *atomic.Int64) {
		var step atomic.Int64
		s := startServer(t, func(o *Options, _ *route.Config) {
			o.HandshakeTimeout = time.Second
			o.IdleTimeout = idle
			o.Now = func() time.Time { return wallStepped(time.Now(), time.Duration(step.Load())) }
		})
		return s, &step
	}
	// slowloris opens a connection that sends half an HTTP header, and
	// waits for the handshake timeout to close it.
	slowloris := func(s *testServer) {
		c := dialTCP(t, s.url, 0)
		c.Write([]byte("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
		waitClosed(t, c, ioTimeout)
	}

	t.Run("back", func(t *testing.T) {
		t.Parallel()
		s, step := start(0)
		c := dialTCP(t, s.url, 0)
		c.Write([]byte("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
		eventually(t, ioTimeout, "the connection to open", func() bool { return s.e.Stats().Conns == 1 })
		step.Store(int64(-time.Hour))
		waitClosed(t, c, ioTimeout) // handshake_timeout is 1 s
	})

	t.Run("forward", func(t *testing.T) {
		t.Parallel()
		s, step := start(30 * time.Second)
		p := newWAMP(t, dialWS(t, s.url, proto.JSON), proto.JSON)
		p.join()
		step.Store(int64(time.Hour))
		// A connection opened after the step and closed by its handshake
		// timeout shows that scans ran a second on from the step.
		slowloris(s)
		if n := s.e.Stats().Closes[CloseIdle]; n != 0 {
			t.Fatalf("%d connections closed as idle after the clock stepped forward", n)
		}
		if m := p.call("wamp.session.count", nil); m.Type != proto.CodeResult {
			t.Fatalf("session after the step: %v", m.Type)
		}
	})
}
