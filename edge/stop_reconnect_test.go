package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestShutdownWhileNatsURLReconnectsKeepsItsDeadline: a node on a NATS
// of its own (NatsURL) stops while that server is gone, its connection
// reconnecting. Shutdown's last flush waited for a PONG that could not
// come, 10 s (nats.go's Flush), whatever its context said: edgewamp's
// stop gives the mesh's leave 5 s (README, "Commands"), and a node with
// nothing in progress took 10.2 s to exit after SIGTERM; with a drain
// and sessions to say GOODBYE to, past the unit's TimeoutStopSec (30 s),
// so that systemd's SIGKILL ended it. The flush now keeps to the
// context's deadline and is skipped while there is no connection.
func TestShutdownWhileNatsURLReconnectsKeepsItsDeadline(t *testing.T) {
	t.Parallel()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the external NATS server did not start")
	}
	t.Cleanup(s.Shutdown)
	a := startNode(t, "a", func(o *Options) { o.NatsURL = s.ClientURL() })
	waitClaims(t, 10*time.Second, a)
	s.Shutdown()
	eventually(t, 10*time.Second, func() error {
		if st := a.n.nc.Status(); st != nats.RECONNECTING {
			return fmt.Errorf("the node's NATS connection is %v, want RECONNECTING", st)
		}
		return nil
	})
	const within = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	t0 := time.Now()
	a.n.Shutdown(ctx)
	if took := time.Since(t0); took > within+2*time.Second {
		t.Fatalf("Shutdown with a %v context while its NATS connection reconnects took %v", within, took.Round(10*time.Millisecond))
	}
}
