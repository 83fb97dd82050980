package edge

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/edge/edgetest"
)

// watchHandlers counts the goroutines in nats.go's key-value watcher's
// message handler (a sweep's watcher delivering entries), only those
// blocked on sending an entry if blocked.
func watchHandlers(blocked bool) int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	k := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "jetstream.(*kvs).WatchFiltered.func") && (!blocked || strings.Contains(g, "[chan send")) {
			k++
		}
	}
	return k
}

// A sweep of the claim bucket reads it through nats.go's watcher, whose
// handler blocks until the sweep takes each entry from a channel of 256.
// A sweep cut short (the node shutting down, a purge the store did not
// answer within claimTimeout, the store silent) stopped the watcher with
// entries still coming: its handler stayed blocked on the channel for
// ever, a goroutine and the entries it held leaked per sweep cut short.
// Not parallel: no other test's sweep runs while the goroutines are
// counted.
func TestClaimSweepCutShortLeaksNothing(t *testing.T) {
	hub := startNode(t, "hub", func(o *Options) {
		o.Leaf.Listen = edgetest.FreeAddr(t)
		o.testClaimSweep = 100 * time.Millisecond
	})
	waitClaims(t, 20*time.Second, hub)
	ctx := ctxT(t, 30*time.Second)
	before := watchHandlers(false)
	// Claims whose values name no node: each sweep purges them, one
	// round trip each, while its watcher runs ahead.
	nc, err := clientPort(hub.n)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.NewWithDomain(nc, jsDomain)
	if err != nil {
		t.Fatal(err)
	}
	const k = 3000
	for i := range k {
		b := make([]byte, 16)
		rand.Read(b)
		if _, err := js.PublishAsync("$KV."+claimBucket+".c."+hex.EncodeToString(b), []byte("no node at all")); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("the store did not take the claims")
			}
		}
	}
	<-js.PublishAsyncComplete()
	// Stop the node in the middle of a sweep.
	eventually(t, 10*time.Second, func() error {
		info, err := hub.n.claims.stream.Info(ctx)
		if err != nil {
			return err
		}
		if n := info.State.Msgs; n > k-50 || n < 500 || watchHandlers(true) == 0 {
			return fmt.Errorf("%d claims left, sweeping %v, its watcher not ahead", n, hub.n.claims.sweeping.Load())
		}
		return nil
	})
	hub.stop()
	var last error
	if !within(5*time.Second, func() error {
		if n := watchHandlers(false); n > before {
			last = fmt.Errorf("%d watcher handlers left after the node stopped (%d before)", n, before)
			return last
		}
		return nil
	}) {
		t.Fatal(last)
	}
}
