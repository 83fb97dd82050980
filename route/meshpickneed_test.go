package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A call from another node needing a callee feature (progressive call
// invocations, payload passthru mode) is picked on the callee's node by
// pickLocalExcept, off the caller's node's event loop but on the mesh's
// receiving goroutine. It counted the callees that have the feature by
// walking the whole list, then walked it again to the policy's one: two
// walks of a registration's callees per such call (and a third when none
// had it), where the list keeps those counts by chunk (pickCallee reads
// them since 87b092e). The test tells a walk by what it sees, as
// TestPickCalleeNeedSkipsChunksWithout does: once the list is built, a
// callee in the middle is made to announce the features (a session's
// features never change in the router), which a walk finds and a look at
// the chunks' counts does not.
func TestMeshPickNeedReadsCounts(t *testing.T) {
	const n = 64 * calleesPerChunk
	l := noCallees
	var mid *Session
	for i := range n {
		s := &Session{id: uint64(i + 1)}
		if i == 0 || i == n-1 {
			s.feat = fCalleeProgInv | fCalleePPT
		}
		if i == n/2 {
			mid = s
		}
		l = l.with(callee{s: s, at: int64(1000 + i), seq: uint64(i + 1)})
	}
	mid.feat = fCalleeProgInv | fCalleePPT
	for _, need := range []calleeNeed{needProg, needPPT, needProg | needPPT} {
		for _, inv := range []proto.Invoke{proto.InvokeRoundRobin, proto.InvokeRandom, proto.InvokeFirst, proto.InvokeLast} {
			t.Run(fmt.Sprintf("need=%d/%s", need, inv), func(t *testing.T) {
				reg := &registration{invoke: inv}
				reg.callees.Store(l)
				got := map[uint64]int{}
				for k := range 32 {
					c, ok := pickLocalExcept(reg, nil, need, nil)
					if !ok {
						t.Fatal("no pick")
					}
					if c.s == mid {
						t.Fatalf("pick %d took the callee in the middle: it walked the callees of chunks without one that takes the call (O(callees) per call)", k)
					}
					if c.s.id != 1 && c.s.id != n {
						t.Fatalf("pick %d took callee %d, which does not take the call", k, c.s.id)
					}
					got[c.s.id]++
				}
				switch inv {
				case proto.InvokeRoundRobin:
					if got[1] != 16 || got[n] != 16 {
						t.Fatalf("roundrobin gave the two callees that take the call %d and %d of 32", got[1], got[n])
					}
				case proto.InvokeFirst:
					if got[1] != 32 {
						t.Fatalf("first gave the first capable callee %d of 32", got[1])
					}
				case proto.InvokeLast:
					if got[n] != 32 {
						t.Fatalf("last gave the last capable callee %d of 32", got[n])
					}
				}
				// Excluding one (a rerouted call), the other.
				if c, ok := pickLocalExcept(reg, []uint64{1}, need, nil); !ok || (c.s.id != n && c.s != mid) {
					t.Fatalf("excluding callee 1: %v %v", c.s, ok)
				}
			})
		}
	}
}
