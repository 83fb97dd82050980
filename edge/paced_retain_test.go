package edge

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// An answer whose every byte has been sent is no longer counted in the
// held answers' bound (maxPacedHeld, and an asker's quarter of it): its
// bytes must not stay in memory either while its last part waits for its
// acknowledgement. With several parts in flight (38fb0df), the last parts
// of many answers go together (each a little past a multiple of a part:
// its last part small), and each part in flight kept its whole answer, so
// an asker's answers could hold up to its share again beside a full new
// share, until acknowledged or pacedWait. Before 38fb0df one at most was
// kept so.
func TestPacedAnswersSentWholeNotKeptByTheirLastPart(t *testing.T) {
	t.Parallel()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	n, err := New(Options{Router: r, Name: "h", NatsURL: "nats://127.0.0.1:1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n.peers.byName["a"] = &peer{name: "a"}
	inbox := nodeInbox("a")
	const k, size = 16, 2*pacedPart + 1024 // two parts, and a last one of 1 KiB
	var freed atomic.Int32
	hold := func(i int) { // ans is referenced by nothing here once held
		ans := make([]byte, size)
		runtime.SetFinalizer(&ans[0], func(*byte) { freed.Add(1) })
		n.answerQuery("a", inbox, true, inbox+".a."+string(rune('a'+i))+".1.500.b1", ans)
	}
	for i := 0; i < k; i++ {
		hold(i)
	}
	if got := n.stats.PacedRefused.Load(); got != 0 {
		t.Fatalf("%d answers refused", got)
	}
	// Acknowledge the parts on their way, of answers still held first,
	// until every byte of every answer has been sent: the last parts of
	// answers at the same offset go together and stay in flight.
	for steps := 0; ; steps++ {
		n.pmu.Lock()
		pt, held := n.paced["a"], n.pacedBytes
		var tail string
		var end int
		if pt != nil {
			for _, f := range pt.flight {
				if tail == "" || indexHeld(pt.q, f.h) >= 0 {
					tail, end = f.h.tail, f.end
				}
			}
		}
		n.pmu.Unlock()
		if held == 0 {
			break
		}
		if tail == "" || steps > 10*k {
			t.Fatalf("%d bytes still held and no part of them in flight to acknowledge", held)
		}
		n.pacedAck("a", append(binary.AppendUvarint([]byte{pacedNext}, uint64(end)), tail...))
	}
	n.pmu.Lock()
	inFlight := len(n.paced["a"].flight)
	n.pmu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for freed.Load() < k && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(n) // the node, its parts in flight, to the end
	if got := freed.Load(); got != k {
		t.Fatalf("every byte of %d answers of %d bytes sent (%d last parts in flight, unacknowledged; 0 bytes counted held): %d of them freed, the others kept in memory by their parts in flight (%d KiB uncounted)",
			k, size, inFlight, got, int(k-got)*size>>10)
	}
}
