package route

import (
	"slices"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// Other nodes' wildcard registrations are put in the index unchecked
// (they cannot be refused here), so after a partition in which each side
// took patterns up to maxWildcardWalk the index's walk is past it on both.
// A REGISTER of a pattern that adds nothing to it (overlapping none of
// them) must still be taken: before, every new wildcard REGISTER of that
// component count was refused "overlaps too many", on every node, for as
// long as the patterns stayed.
func TestWildcardWalkPastBoundFromMesh(t *testing.T) {
	mm, envs := newMemMesh(t, 2, 2, nil)
	mm.mu.Lock()
	mm.hold = true // the directory partitioned: neither node sees the other's
	mm.mu.Unlock()
	all := worstShape(12, 4096)
	rev := slices.Clone(all)
	slices.Reverse(rev)
	taken := [2]int{}
	// 16 sessions a side, each its own owner (test-N), each of whom may
	// take a walk of its own patterns to a quarter of the bound
	// (walkShares): together they take a side's up to the bound.
	const per = 256
	for i, l := range [][]string{all, rev} {
		for j := 0; j < len(l); j += per {
			c := envs[i].join(proto.JSON)
			for _, m := range c.requestMany(proto.CodeRegister, l[j:j+per], wildcardOpt) {
				if m.Type == proto.CodeRegistered {
					taken[i]++
				}
			}
		}
	}
	mm.release()
	mm.sync()
	rm := envs[0].r.Realm("realm1")
	rm.mu.RLock()
	walk := rm.regs.wild[13].walk
	best := rm.regs.bestCost([]byte(strings.Repeat("a.", 12) + "c"))
	rm.mu.RUnlock()
	t.Logf("taken %d and %d on the two sides; healed, node A's index walk bound is %d, a.a.…a.c walks %d", taken[0], taken[1], walk, best)
	if walk <= maxWildcardWalk {
		t.Skipf("the two sides' patterns stay within the bound together (%d)", walk)
	}
	late := envs[0].join(proto.JSON)
	for _, u := range []string{"o" + strings.Repeat(".", 12) + "z", "o.p.q.r.s.t.u.v.w.x.y.z.z"} {
		m := late.requestMany(proto.CodeRegister, []string{u}, wildcardOpt)[0]
		if m.Type != proto.CodeRegistered {
			t.Fatalf("REGISTER %q, overlapping none of the patterns, answered %s", u, describe(m))
		}
	}
	// One that makes the walk longer still is refused.
	m := late.requestMany(proto.CodeRegister, []string{strings.Repeat("a.", 12)}, wildcardOpt)[0]
	if m.Type != proto.CodeError || string(m.URI) != proto.URIUnavailable {
		t.Fatalf("REGISTER of a pattern that lengthens the walk past the bound answered %s", describe(m))
	}
	rm.mu.RLock()
	after := rm.regs.wild[13].walk
	rm.mu.RUnlock()
	if after != walk {
		t.Fatalf("the walk bound went from %d to %d", walk, after)
	}
	// Node B dies: its patterns leave node A's index, and the walk with
	// them, back within the bound.
	mm.kill(1)
	rm.mu.RLock()
	checkWalks(t, rm.regs)
	after = rm.regs.wild[13].walk
	rm.mu.RUnlock()
	t.Logf("node B gone: node A's walk bound is %d", after)
	if after > maxWildcardWalk {
		t.Fatalf("node B gone, node A's walk bound is %d, past %d", after, maxWildcardWalk)
	}
}
