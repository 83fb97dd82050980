package edge

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/route"
)

// The last parts kept to be sent again (inFlight.last) are bounded in all,
// not only per asking node: answers sent whole to many askers at once each
// kept a part's worth (64 KiB) until acknowledged, beside the held
// answers' bound (three quarters of max_outbound), which counts none of
// them: 1,000 askers, 64 MiB more. Past a quarter of that bound a last
// part is sent without a copy kept (not sent again if lost, as before);
// none is refused for it.
func TestPacedKeptLastPartsBoundedInAll(t *testing.T) {
	t.Parallel()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	n, err := New(Options{Router: r, Name: "h", NatsURL: "nats://127.0.0.1:1", MaxOutbound: 1 << 20, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	const askers = 40
	for i := range askers {
		name := fmt.Sprintf("a%d", i)
		n.peers.byName[name] = &peer{name: name, readsParts: true, partsAgain: true}
		inbox := nodeInbox(name)
		n.answerQuery(name, inbox, true, inbox+".a.1.1.500.b1", make([]byte, pacedPart))
		if b := n.out.take(); b != nil { // handed to NATS
			n.out.done(b)
		}
	}
	// The node's own dispatchers never run: its state is read unlocked.
	kept, flying := 0, 0
	for _, pt := range n.paced {
		for _, f := range pt.flight {
			kept += len(f.last)
			flying++
		}
	}
	if refused := n.stats.PacedRefused.Load(); refused != 0 || flying != askers {
		t.Fatalf("%d answers refused, %d in flight of %d", refused, flying, askers)
	}
	if max := int(n.maxPacedHeld() / 4); kept > max {
		t.Fatalf("%d answers sent whole to as many askers keep %d bytes for sending again (held %d), past %d (a quarter of the held answers' bound %d)", askers, kept, n.pacedBytes, max, n.maxPacedHeld())
	}
}
