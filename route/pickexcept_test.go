package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// pickExcept is the mesh's pick for a call from another node that needs
// a callee feature or was already offered to some callees.
func pickExcept(reg *registration, exclude []uint64, need calleeNeed) (callee, bool) {
	return pickLocalExcept(reg, exclude, need, nil)
}

// exceptList builds a list of n callees (ids 1..n), the first announcing
// progressive_call_invocations and payload_passthru_mode; it returns the
// list and the callee in the middle.
func exceptList(n int) (*calleeList, *callee) {
	l := noCallees
	for i := range n {
		s := &Session{id: uint64(i + 1)}
		if i == 0 {
			s.feat = fCalleeProgInv | fCalleePPT
		}
		l = l.with(callee{s: s, at: int64(1000 + i), seq: uint64(i + 1)})
	}
	// The middle callee, in its chunk (the list is all full chunks).
	mid := n / 2
	for i := range l.full {
		ch := &l.full[i]
		if mid < ch.end {
			return l, &ch.c[mid-(ch.end-len(ch.c))]
		}
	}
	return l, &l.tail[mid-l.base]
}

// A call from another node that needs a callee feature (a progressive
// call invocation, payload passthru mode) or names callees already
// offered it (a rerouted call) is picked for by pickLocalExcept on the
// callee's node. It walked the whole list twice (a count, then the k-th):
// O(callees) per such CALL from another node, 2 × 100,000 callees. It now
// reads the counts the list keeps by chunk (needList, as the one-node pick
// does) and steps over the excluded callees only.
//
// The test tells a walk by what it sees, as
// TestPickCalleeNeedSkipsChunksWithout does: once the list is built, the
// callee in the middle is made to announce the features (which a walk
// finds and the chunks' counts do not), or, for a call needing nothing,
// has its session taken away (a walk that looks at it panics).
func TestPickLocalExceptDoesNotWalkTheList(t *testing.T) {
	const n = 64 * calleesPerChunk
	policies := []proto.Invoke{proto.InvokeRoundRobin, proto.InvokeRandom, proto.InvokeFirst, proto.InvokeLast}
	for _, need := range []calleeNeed{needProg, needPPT, needProg | needPPT} {
		for _, exclude := range [][]uint64{nil, {2, 3}} {
			for _, inv := range policies {
				t.Run(fmt.Sprintf("need=%d/exclude=%d/%s", need, len(exclude), inv), func(t *testing.T) {
					l, mid := exceptList(n)
					mid.s.feat = fCalleeProgInv | fCalleePPT
					reg := &registration{invoke: inv}
					reg.callees.Store(l)
					for k := range 16 {
						c, ok := pickExcept(reg, exclude, need)
						if !ok {
							t.Fatal("no pick")
						}
						if c.s.id != 1 {
							t.Fatalf("pick %d took callee %d, want 1, the only one counted as taking the call: the pick walked the list (O(callees) per CALL from another node)", k, c.s.id)
						}
					}
				})
			}
		}
	}
	for _, inv := range []proto.Invoke{proto.InvokeRoundRobin, proto.InvokeFirst, proto.InvokeLast} {
		t.Run(fmt.Sprintf("need=0/exclude=2/%s", inv), func(t *testing.T) {
			l, mid := exceptList(n)
			mid.s = nil
			reg := &registration{invoke: inv}
			reg.callees.Store(l)
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("the pick looked at the callee in the middle (%v): it walked the list (O(callees) per CALL from another node)", r)
				}
			}()
			for range 16 {
				c, ok := pickExcept(reg, []uint64{1, uint64(n)}, 0)
				if !ok || c.s == nil || c.s.id == 1 || c.s.id == uint64(n) {
					t.Fatalf("picked %v %v", c.s, ok)
				}
			}
		})
	}
}

// The pick among the callees of a call from another node keeps its
// rules: the excluded callees are left out, a call needing a feature goes
// to a callee with it when one is left, else to another (which refuses it
// feature_not_supported), first/last take the first/last left, random
// and roundrobin reach every callee left.
func TestPickLocalExceptRules(t *testing.T) {
	for _, n := range []int{5, 3 * calleesPerChunk} {
		for _, inv := range []proto.Invoke{proto.InvokeRoundRobin, proto.InvokeRandom, proto.InvokeFirst, proto.InvokeLast} {
			t.Run(fmt.Sprintf("n=%d/%s", n, inv), func(t *testing.T) {
				l, _ := exceptList(n)
				reg := &registration{invoke: inv}
				reg.callees.Store(l)
				// Needing a feature: callee 1 only; excluded, another.
				if c, ok := pickExcept(reg, []uint64{2}, needProg); !ok || c.s.id != 1 {
					t.Fatalf("need, 1 untried: got %v", c.s.id)
				}
				c, ok := pickExcept(reg, []uint64{1}, needProg)
				if !ok || c.s.id == 1 {
					t.Fatalf("need, 1 excluded: got %v %v", c.s, ok)
				}
				// Every callee excluded: none.
				all := make([]uint64, 0, n)
				for i := range min(n, maxCallTries-1) {
					all = append(all, uint64(i+1))
				}
				if n <= maxCallTries-1 {
					if c, ok := pickExcept(reg, all, 0); ok {
						t.Fatalf("all excluded: picked %d", c.s.id)
					}
					if c, ok := pickExcept(reg, all, needPPT); ok {
						t.Fatalf("all excluded, need: picked %d", c.s.id)
					}
				}
				// Excluding 1 and 2 of n.
				seen := map[uint64]int{}
				for range 64 * n {
					c, ok := pickExcept(reg, []uint64{1, 2}, 0)
					if !ok || c.s.id <= 2 {
						t.Fatalf("exclude 1, 2: got %v %v", c.s, ok)
					}
					seen[c.s.id]++
				}
				switch inv {
				case proto.InvokeFirst:
					if len(seen) != 1 || seen[3] == 0 {
						t.Fatalf("first: %v", seen)
					}
				case proto.InvokeLast:
					if len(seen) != 1 || seen[uint64(n)] == 0 {
						t.Fatalf("last: %v", seen)
					}
				default:
					if len(seen) != n-2 {
						t.Fatalf("%s reached %d of the %d callees left", inv, len(seen), n-2)
					}
				}
			})
		}
	}
}

// BenchmarkPickLocalExcept: the pick for a call from another node needing
// a callee feature (one callee of n has it, the first) or excluding two
// callees.
func BenchmarkPickLocalExcept(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		for _, need := range []calleeNeed{0, needProg} {
			b.Run(fmt.Sprintf("callees=%d/need=%d", n, need), func(b *testing.B) {
				l, _ := exceptList(n)
				reg := &registration{invoke: proto.InvokeRoundRobin}
				reg.callees.Store(l)
				exclude := []uint64{2, 3}
				b.ReportAllocs()
				for b.Loop() {
					if _, ok := pickExcept(reg, exclude, need); !ok {
						b.Fatal("no pick")
					}
				}
			})
		}
	}
}
