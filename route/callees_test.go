package route

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// calleesOf returns the calleeList of l, in order (seqs 1, 2, ...).
func calleesOf(l []callee) *calleeList {
	cl := noCallees
	for i, c := range l {
		c.seq = uint64(i + 1)
		cl = cl.with(c)
	}
	return cl
}

// calleeList holds a registration's callees in REGISTER order, the newest
// in a tail appended to in place, the others in chunks a removal copies
// one of. Random REGISTERs and removals (of the newest more often, as a
// REGISTER/UNREGISTER pair does) against a plain slice: the order, at and
// all, the chunks' bounds, and every earlier list unchanged (CALLs read
// them without a lock; the race detector would see an append or a removal
// in place where they read).
func TestCalleeListChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(l *calleeList, want []callee) {
		t.Helper()
		if l.len() != len(want) {
			t.Fatalf("len %d, want %d", l.len(), len(want))
		}
		end := 0
		for j, ch := range l.full {
			if len(ch.c) == 0 || len(ch.c) > calleesPerChunk || ch.end != end+len(ch.c) {
				t.Fatalf("chunk %d of %d: %d callees, end %d after %d", j, len(l.full), len(ch.c), ch.end, end)
			}
			end = ch.end
			if p := countOf(ch.c, needProg); ch.prog != p {
				t.Fatalf("chunk %d of %d: counts %d callees with progressive_call_invocations, has %d", j, len(l.full), ch.prog, p)
			}
			if p := countOf(ch.c, needProg|needPPT); ch.pt != p {
				t.Fatalf("chunk %d of %d: counts %d callees with progressive_call_invocations and payload_passthru_mode, has %d", j, len(l.full), ch.pt, p)
			}
			if p := countOf(ch.c, needPPT); ch.pm != p {
				t.Fatalf("chunk %d of %d: counts %d callees with payload_passthru_mode, has %d", j, len(l.full), ch.pm, p)
			}
		}
		if end != l.base || len(l.tail) > calleesPerChunk {
			t.Fatalf("base %d, chunks' end %d, tail %d", l.base, end, len(l.tail))
		}
		if need := (l.base + calleesPerChunk - 1) / calleesPerChunk; len(l.full) > 2*need {
			t.Fatalf("%d chunks for %d callees", len(l.full), l.base)
		}
		for i, c := range want {
			if got := l.at(i); got != c {
				t.Fatalf("at(%d) = seq %d, want %d", i, got.seq, c.seq)
			}
		}
		i := 0
		for c := range l.all() {
			if c != want[i] {
				t.Fatalf("all: %d-th seq %d, want %d", i, c.seq, want[i].seq)
			}
			i++
		}
		// The count of callees that take progressive call invocations,
		// and the first and last of them (what the node tells the mesh).
		prog, first, last := 0, int64(0), int64(0)
		for _, c := range want {
			if c.s.feat&fCalleeProgInv != 0 {
				if prog == 0 {
					first = c.at
				}
				prog, last = prog+1, c.at
			}
		}
		if l.prog != prog {
			t.Fatalf("prog %d, want %d", l.prog, prog)
		}
		if f, la := l.progSpan(); prog > 0 && (f != first || la != last) {
			t.Fatalf("progSpan %d, %d, want %d, %d", f, la, first, last)
		}
		// And of those that take them in payload passthru mode too.
		pt, first, last := 0, int64(0), int64(0)
		for _, c := range want {
			if c.s.feat&(fCalleeProgInv|fCalleePPT) == fCalleeProgInv|fCalleePPT {
				if pt == 0 {
					first = c.at
				}
				pt, last = pt+1, c.at
			}
		}
		if l.pt != pt {
			t.Fatalf("pt %d, want %d", l.pt, pt)
		}
		if f, la := l.canSpan(true); pt > 0 && (f != first || la != last) {
			t.Fatalf("canSpan(true) %d, %d, want %d, %d", f, la, first, last)
		}
		// The k-th callee that meets each need (pickCallee), against a
		// filter of want.
		for _, need := range []calleeNeed{needProg, needPPT, needProg | needPPT} {
			var meet []callee
			for _, c := range want {
				if c.meets(need) {
					meet = append(meet, c)
				}
			}
			if l.count(need) != len(meet) {
				t.Fatalf("count(%d) %d, want %d", need, l.count(need), len(meet))
			}
			for _, k := range []int{0, len(meet) / 2, len(meet) - 1} {
				if len(meet) == 0 {
					break
				}
				if got, ok := l.nthCan(k, need); !ok || got != meet[k] {
					t.Fatalf("nthCan(%d, %d) = seq %d %v, want %d", k, need, got.seq, ok, meet[k].seq)
				}
			}
		}
	}
	type snap struct {
		l    *calleeList
		want []callee
	}
	var snaps []snap
	maxLen := 0
	l, seq := noCallees, uint64(0)
	var want []callee
	// About 900 callees at the peak, in several chunks (calleesPerChunk is
	// 256), then fewer as leaving wins.
	const steps, leaving = 8000, 4700
	for step := range steps {
		switch r := rng.IntN(10); {
		case len(want) > 0 && r < 2: // the newest leaves
			l = l.without(want[len(want)-1].seq)
			want = want[: len(want)-1 : len(want)-1]
		case len(want) > 0 && (r < 4 || step > leaving && r < 8):
			k := rng.IntN(len(want))
			l = l.without(want[k].seq)
			want = append(append([]callee(nil), want[:k]...), want[k+1:]...)
		default:
			seq++
			c := callee{s: &Session{id: seq}, at: int64(rng.Uint32()), seq: seq}
			c.s.feat = [...]features{fCalleeProgInv, fCalleeProgInv | fCalleePPT, fCalleePPT, 0, 0, 0}[rng.IntN(6)]
			l = l.with(c)
			want = append(want[:len(want):len(want)], c)
		}
		if l.without(seq+1) != l {
			t.Fatal("removing a callee not in the list changed it")
		}
		if step%500 == 0 {
			maxLen = max(maxLen, len(want))
			check(l, want)
			snaps = append(snaps, snap{l, want})
		}
	}
	if maxLen < 3*calleesPerChunk {
		t.Fatalf("at most %d callees: too few for several chunks", maxLen)
	}
	check(l, want)
	for _, s := range snaps {
		check(s.l, s.want)
	}
	for len(want) > 0 {
		k := rng.IntN(len(want))
		l = l.without(want[k].seq)
		want = append(want[:k:k], want[k+1:]...)
	}
	check(l, want)
	if len(l.full) != 0 {
		t.Fatalf("empty list: %d chunks", len(l.full))
	}
}

// A REGISTER, and the UNREGISTER of another callee than the newest, on a
// registration of 100,000 callees copy a chunk and the list of chunks, not
// the callees.
func TestCalleeListChangeCopiesLittle(t *testing.T) {
	const n = 100000
	l := noCallees
	for i := range n {
		l = l.with(callee{s: &Session{id: uint64(i + 1)}, seq: uint64(i + 1)})
	}
	const rounds = 1000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range rounds {
		s := uint64(n + i + 1)
		l = l.with(callee{s: &Session{id: s}, seq: s})
		l = l.without(uint64(i*97%n + 1))
	}
	runtime.ReadMemStats(&after)
	bytes := (after.TotalAlloc - before.TotalAlloc) / rounds
	t.Logf("%d bytes per REGISTER and removal at %d callees", bytes, n)
	if bytes > 32<<10 {
		t.Fatalf("a REGISTER and a removal at %d callees allocate %d bytes, want a chunk's worth and the chunk list (%d chunks)", n, bytes, len(l.full))
	}
}

// A registration's first and last callees that take progressive call
// invocations are found without looking at the callees of a chunk that
// has none (each chunk counts its own): meshLocalChanged asks for them at
// every REGISTER, UNREGISTER and leave under the realm's lock, and a
// progressive call's first chunk on a mesh at every call. Before, a walk
// from each end to the first such callee: with one capable callee first
// and 32,768 that are not after it (a first or last registration on a
// mesh), the 32,768 REGISTERs took 18.2 s instead of 2.0 s, each of the
// last ones holding the realm's lock about 1.2 ms, and 1,024 of the
// callees leaving 811 ms instead of 14 ms.
//
// The test tells a walk by what it sees: once the list is built, a
// callee in the middle is made to announce the feature (a session's
// features never change in the router), which a walk from the end finds
// and a look at the chunks' counts does not.
func TestCalleeListProgSpanSkipsChunksWithout(t *testing.T) {
	const n = 64 * calleesPerChunk
	l := noCallees
	var mid *Session
	for i := range n {
		s := &Session{id: uint64(i + 1)}
		if i == 0 {
			s.feat = fCalleeProgInv
		}
		if i == n/2 {
			mid = s
		}
		l = l.with(callee{s: s, at: int64(1000 + i), seq: uint64(i + 1)})
	}
	if l.prog != 1 {
		t.Fatalf("prog %d, want 1", l.prog)
	}
	mid.feat = fCalleeProgInv
	if f, la := l.progSpan(); f != 1000 || la != 1000 {
		t.Fatalf("progSpan %d, %d: it looked at the callees of chunks without a capable callee (a walk of the list, O(callees) per REGISTER on a mesh); want 1000, 1000", f, la)
	}
}
