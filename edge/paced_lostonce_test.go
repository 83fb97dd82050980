package edge

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// Stats.PacedLost counts the parts taken for lost, each once, however
// many times it goes again unacknowledged (an asker that stopped reading
// is sent it every pacedLost until pacedWait drops the answer): it
// counted each sending again, so that one lost part read as several.
func TestPacedLostCountsEachPartOnce(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		size int
	}{{"held", 3 * pacedPart}, {"whole", pacedPart / 2}} {
		t.Run(c.name, func(t *testing.T) {
			r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(r.Close)
			n, err := New(Options{Router: r, Name: "h", NatsURL: "nats://127.0.0.1:1", Heartbeat: 50 * time.Millisecond, PeerTimeout: time.Second, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			n.peers.byName["a"] = &peer{name: "a", readsParts: true, partsAgain: true}
			inbox := nodeInbox("a")
			n.answerQuery("a", inbox, true, inbox+".a.1.1.500.b1", make([]byte, c.size))
			// The node's own dispatchers never run: its state is read unlocked.
			pt := n.paced["a"]
			n.pacedRTT["a"] = 10 * time.Millisecond
			lost := n.pacedLost("a") // half peer_timeout: 500 ms, pacedWait 2 s
			for i := range 3 {
				if pt == nil || len(pt.flight) != 1 {
					t.Fatalf("sweep %d: in flight %+v", i, pt)
				}
				sent := pt.flight[0].sentAt
				n.sweepPaced(sent.Add(lost + time.Millisecond))
				if len(pt.flight) != 1 || pt.flight[0].sentAt == sent {
					t.Fatalf("sweep %d: not sent again: %+v", i, pt.flight)
				}
			}
			if got := n.stats.PacedLost.Load(); got != 1 {
				t.Fatalf("one part sent again 3 times: PacedLost %d, want 1", got)
			}
		})
	}
}
