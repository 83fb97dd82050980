package edge

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/edge/edgetest"
)

// A frame packs at most maxFrameItems envelopes in at most maxFrame bytes
// (packRun); a receiver took any number. A frame of 200,000 interrupts
// of 5 bytes (1 MB, within max_inbound) from another node, or from
// anything that reaches the mesh's NATS, became 200,000 envelopes handed
// to the router, each posted to every shard as a task that max_inbound
// no longer counts: hundreds of bytes allocated and queued per byte
// received. A frame past either bound is malformed: dropped whole,
// counted (bad_frame).
func TestFrameFromPeerBounded(t *testing.T) {
	a := startNode(t, "a", func(o *Options) { o.Leaf.Listen = edgetest.FreeAddr(t) })
	nc, err := clientPort(a.n)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	drain := controlDrain(t, a, nc, nil)
	// Interrupts of calls nobody made: 'X', call id, mode, empty reason.
	frame := []byte{frameMark}
	for i := range 200_000 {
		frame = binary.AppendUvarint(frame, 5)
		frame = append(frame, 'X', byte(1+i%100), 0x7f, 1, 0)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	bad := a.n.stats.BadFrames.Load()
	if err := nc.PublishMsg(&nats.Msg{Subject: nodeSubject("a", "m"), Reply: nodeInbox("x"), Data: frame}); err != nil {
		t.Fatal(err)
	}
	drain()
	runtime.ReadMemStats(&ms)
	if d := ms.TotalAlloc - before; d > 16<<20 {
		t.Errorf("a frame of %d KiB with 200,000 envelopes made the node allocate %d MiB", len(frame)>>10, d>>20)
	}
	if d := a.n.stats.BadFrames.Load() - bad; d != 1 {
		t.Errorf("bad_frame counted %d, want 1", d)
	}
	// A frame within the bounds is still taken.
	ok := []byte{frameMark}
	for range maxFrameItems {
		ok = binary.AppendUvarint(ok, 5)
		ok = append(ok, 'X', 1, 0x7f, 1, 0)
	}
	bad = a.n.stats.BadFrames.Load()
	nc.PublishMsg(&nats.Msg{Subject: nodeSubject("a", "m"), Reply: nodeInbox("x"), Data: ok})
	drain()
	if d := a.n.stats.BadFrames.Load() - bad; d != 0 {
		t.Errorf("a frame of %d envelopes counted bad", maxFrameItems)
	}
}

// controlDrain hooks a's control dispatcher and returns drain, which
// publishes two markers on nc and waits for the dispatcher to take both:
// the hook runs before its batch, so at the second marker's the batch of
// the first, and everything sent before it, is done. at, if set, runs on
// the dispatcher at each marker.
func controlDrain(t *testing.T, a *tnode, nc *nats.Conn, at func()) (drain func()) {
	got := make(chan struct{}, 1)
	hook := func(ms []*nats.Msg) {
		for _, m := range ms {
			if m.Subject == nodeSubject("a", "t") {
				if at != nil {
					at()
				}
				got <- struct{}{}
			}
		}
	}
	a.n.testHookControl.Store(&hook)
	return func() {
		t.Helper()
		for range 2 {
			nc.Publish(nodeSubject("a", "t"), nil)
			nc.Flush()
			select {
			case <-got:
			case <-time.After(30 * time.Second):
				t.Fatal("the dispatcher did not take the marker")
			}
		}
	}
}
