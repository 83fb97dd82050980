package client

import (
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A router that goes on sending but reads nothing (its read side wedged,
// or the link lost one way) does not answer the keepalive's ping: the
// session ends with ErrKeepAlive once the ping has gone unanswered for
// KeepAliveTimeout. Before, any bytes from the router counted as its
// answer, and a router sending an event every 20 ms kept a session whose
// requests it never read alive for good.
func TestKeepAliveNeedsPongFromSendingRouter(t *testing.T) {
	for _, scheme := range []string{"rs", "ws"} {
		t.Run(scheme, func(t *testing.T) {
			s, c := setup(t, scheme, proto.JSON, keepAlive)
			stop := chatter(c, func() bool { return true }) // and never reads
			defer stop()
			select {
			case <-s.Done():
			case <-time.After(2 * time.Second):
				t.Fatal("the session is up 2 s on, with a keepalive of 100 + 100 ms, though the router has read none of its pings")
			}
			if !errors.Is(s.Err(), ErrKeepAlive) {
				t.Fatalf("the session ended with %v, want ErrKeepAlive", s.Err())
			}
		})
	}
}

// A router that answers the pings keeps the session, whatever else it
// sends: the scripted peer reads (answering pings) while it chatters.
func TestKeepAliveAnsweredKeepsSession(t *testing.T) {
	for _, scheme := range []string{"rs", "ws"} {
		t.Run(scheme, func(t *testing.T) {
			s, c := setup(t, scheme, proto.JSON, keepAlive)
			stop := chatter(c, func() bool { return true })
			readAWhile(t, c, time.Second)
			stop()
			noErr(t, "session", s.Err())
		})
	}
}
