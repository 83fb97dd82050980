package edge

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/edge/edgetest"
)

// Every name a message comes from made a peer, and each peer made (or
// dropped for its silence) cost a walk of all of them: messages from
// ever new names held the control dispatcher for a time that grew with
// the square of their number (20,000 tiny messages: 5.8 s, in which the
// node sent no heartbeat, so its peers took it for dead). Past maxPeers a
// new name's messages are dropped, counted.
func TestPeersFromManyNamesBounded(t *testing.T) {
	defer func(m int) { maxPeers = m }(maxPeers)
	maxPeers = 64 // 1,024 in production: the test's 3,000 names would then cost a second
	a := startNode(t, "a", func(o *Options) { o.Leaf.Listen = edgetest.FreeAddr(t) })
	nc, err := clientPort(a.n)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	got := make(chan struct{}, 1)
	peers := 0
	hook := func(ms []*nats.Msg) {
		for _, m := range ms {
			if m.Subject == nodeSubject("a", "t") {
				peers = len(a.n.peers.byName)
				got <- struct{}{}
			}
		}
	}
	a.n.testHookControl.Store(&hook)
	const names = 3000
	start := time.Now()
	for i := range names {
		// An interrupt of no call, from node p<i>.
		nc.PublishMsg(&nats.Msg{Subject: nodeSubject("a", "m"), Reply: nodeInbox(fmt.Sprint("p", i)), Data: []byte{'X', 1, 0, 0}})
		if i%500 == 499 {
			nc.Flush()
		}
	}
	// The hook runs before its batch: the second marker's sees what the
	// batch of the first did.
	for range 2 {
		nc.Publish(nodeSubject("a", "t"), nil)
		nc.Flush()
		select {
		case <-got:
		case <-time.After(60 * time.Second):
			t.Fatal("the dispatcher did not take the marker")
		}
	}
	took := time.Since(start)
	t.Logf("%d names: %v, %d peers, %d refused (slow consumer %d, control_full %d)", names, took.Round(time.Millisecond), peers, a.n.stats.PeersRefused.Load(), a.n.stats.SlowConsumer.Load(), a.n.stats.ControlFull.Load())
	if peers > maxPeers || a.n.stats.PeersRefused.Load() != uint64(names-maxPeers) {
		t.Fatalf("messages from %d names made %d peers (bound %d), %d refused", names, peers, maxPeers, a.n.stats.PeersRefused.Load())
	}
}
