package route

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A get_retained SUBSCRIBE repeated while the session is in debt (or its
// 16 gathers busy) is merged into the ask waiting for its turn
// (retainedAsk.more), and one gather then delivers the retained events to
// each merged SUBSCRIBE: 65 times, charged once (24e9c32 charges this
// node's retained events by their bytes, ab4d8d8 each node asked; neither
// by the deliveries). A session repeating the SUBSCRIBE of a topic with a
// large event retained on its own node had it encoded and sent some 65
// times per charge, on a healthy mesh. Each delivery is charged now.
func TestMeshMergedGetRetainedChargedPerDelivery(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	big := strings.Repeat("k", 128<<10)
	pub := e.join(proto.JSON)
	pub.publish("com.big", map[string]any{"retain": true}, []any{big}, nil)
	mm.sync()
	att := e.join(proto.JSON)
	e.advance(time.Minute) // the budget full
	events := 0
	drain := func() {
		for len(att.peer.in) > 0 {
			if m := <-att.peer.in; m.Type == proto.CodeEvent {
				events++
			}
		}
	}
	// Each time nothing of the session waits, 65 SUBSCRIBEs: the first
	// asks (or waits for the debt), the other 64 merge into it.
	idle := func() (yes bool) {
		att.exec.do(func() { yes = len(att.sess.retains.q) == 0 && len(att.sess.walks.q) == 0 && att.sess.retains.busy == 0 })
		return yes
	}
	const rounds, step = 200, 5 * time.Millisecond
	sent := 0
	for range rounds {
		if idle() {
			for range 1 + maxMergedAsks {
				att.subscribeRetained("com.big")
			}
			sent += 1 + maxMergedAsks
		}
		mm.sync()
		drain()
		e.advance(step)
	}
	mm.sync()
	drain()
	per := int64(len(big)+len("com.big")) / retainedBytesPerEntry
	allowed := (walkBurst + int64(rounds)*int64(step)*walkRate/int64(time.Second)) / per
	// What a session may be sent before its charges catch up: its 16
	// gathers under way and one merged ask delivered at once.
	slack := int64(maxSessionGathers + maxMergedAsks + 1)
	t.Logf("%d get_retained SUBSCRIBEs of a %d-byte retained event over %v: %d events sent; the walk budget allows %d (+%d at once)", sent, len(big), time.Duration(rounds)*step, events, allowed, slack)
	if int64(events) > allowed+slack {
		t.Fatalf("%d retained events of %d bytes sent in %v; the walk budget allows %d (+%d at once)", events, len(big), time.Duration(rounds)*step, allowed, slack)
	}
}
