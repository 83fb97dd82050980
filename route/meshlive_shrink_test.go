package route

import (
	"maps"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The mesh's record of the calls from other nodes in flight here
// (meshState.live, 16 stripes) gives back what a peak of calls grew it to
// once the calls end, as the shards' tables of them do
// (TestMeshCallTablesShrinkAfterPeak): Go maps never shrink, and its
// stripes kept the tables of their peak for the node's life, counted in
// no bound: after eight callers had 4,096 calls each in flight to a callee
// on another node, all answered but one each, the stripes held 1,706 KiB
// (measured as what the heap gives back when the stripes are replaced by
// copies of what they hold; shrunk, a stripe keeps a table sized for an
// eighth of its peak at most, ~212 KiB in all).
func TestMeshLiveTableShrinksAfterPeak(t *testing.T) {
	meshLiveShrinks(t, 4096, 256<<10)
}

// The stripes shrink after a peak that fills none of them to
// mapShrinkMin too: each stripe had the floor of a whole table
// (mapShrinkMin, 1,024 entries), so that a peak of fewer than 16 × 1,024
// calls shrank none: after eight callers had 2,000 calls each in flight
// (16,000, ~1,000 a stripe), all answered but one each, the stripes held
// 853 KiB, four times what a peak twice as high leaves (212 KiB).
func TestMeshLiveTableShrinksAfterPeakUnderStripeMinimum(t *testing.T) {
	meshLiveShrinks(t, 2000, 128<<10)
}

// meshLiveShrinks has eight callers on one node make per calls each to a
// callee on the other, all answered but one each, and checks that the
// callee node's meshState.live then holds at most limit bytes more than
// copies of what it holds.
func meshLiveShrinks(t *testing.T, per int, limit int64) {
	t.Helper()
	mm, es := newMemMesh(t, 2, 1, nil)
	callee := es[1].joinOnInbox(0, 8*per+16)
	callee.register("com.p", nil)
	var callers []*tc
	for range 8 {
		callers = append(callers, es[0].joinOnInbox(0, per+16))
	}
	mm.sync()
	kept := callRound(t, callee, callers, per)
	mm.sync()
	ms := es[1].r.ms
	if n := ms.liveCount(); n != len(kept) {
		t.Fatalf("the callee's node holds %d calls from the other node as live, want %d", n, len(kept))
	}
	h0 := heapLive()
	for i := range ms.live {
		ls := &ms.live[i]
		ls.mu.Lock()
		c := make(map[minvKey]liveEntry, len(ls.m))
		maps.Copy(c, ls.m)
		ls.m = c
		ls.mu.Unlock()
	}
	held := h0 - heapLive()
	t.Logf("after %d calls from another node, all but %d answered: meshState.live holds %d KiB", per*len(callers), len(kept), held>>10)
	if held > limit {
		t.Errorf("after %d calls from another node, all but %d answered, meshState.live holds %d KiB, want at most %d", per*len(callers), len(kept), held>>10, limit>>10)
	}
	for _, inv := range kept {
		callee.yield(inv, nil, []any{"late"})
	}
	for _, c := range callers {
		if m := c.expect(proto.CodeResult); len(argsOf(m)) != 1 {
			t.Fatalf("a kept call's RESULT has %v", argsOf(m))
		}
	}
}
