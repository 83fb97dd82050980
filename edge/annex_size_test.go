package edge

import (
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// syncAnswerBytes returns the bytes of the sync answer that sendDirectory
// sends for n entries, all of one size, as entry(i) gives them: 1/256 of
// them are encoded (wr.entry, with their annexes), times 256 (under -race
// all 1,048,576 took 1.7 s a case), plus a part's framing for each
// syncPart bytes (boot, version, count, index, whether more follow, mesh
// version).
func syncAnswerBytes(n int, entry func(i int) route.MeshRealmReg) int64 {
	var total int64
	var w wr
	size := -1
	for i := range n / 256 {
		w = w[:0]
		w.entry(entry(i))
		if size >= 0 && len(w) != size {
			panic("entries of different sizes")
		}
		size = len(w)
		total += int64(len(w))
	}
	total *= 256
	var h wr
	h.fixed64(1)
	h.uv(1 << 20) // a directory version
	h.uv(uint64(syncPart / size))
	h.uv(uint64(total / syncPart))
	h = append(h, 0)
	h.uv(meshVersion)
	return total + (total/syncPart+1)*int64(len(h))
}

// A node's sync answer for 1,048,576 registrations (maxDirEntries, the
// most a node may announce in a realm) of the first policy, URIs of 40
// bytes, must fit in what its peers take (1.25 × max_outbound at the
// default 64 MiB): a larger one is refused by every peer (badSync) and
// the node's directory is never resynced. The annex of progressive call
// invocations wrote both times whole after every entry (23 bytes: 72.4
// → 96.5 MB with Go client callees, which all take them); it is now left
// out when every callee takes them and writes its times as deltas from
// the entry's (7 bytes with callees that do not take them; 9 when one
// of two does), and so is the annex of those that take them in payload
// passthru mode too when they are the same callees (7 bytes when none).
func TestDirectorySyncAnnexFitsMaxOutbound(t *testing.T) {
	const n = 1 << 20
	bound := int64(defaultMaxOutbound + defaultMaxOutbound/4)
	base := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC).UnixNano()
	uri := func(i int) string {
		s := strconv.Itoa(i)
		return "com.example.app.procedure.first." + "00000000"[len(s):] + s
	}
	entry := func(i, callees int, prog route.MeshCapable) route.MeshRealmReg {
		at := base + int64(i)*int64(time.Microsecond)
		e := route.MeshRealmReg{Realm: "realm1", MeshReg: route.MeshReg{Match: proto.MatchExact, URI: uri(i), Invoke: proto.InvokeFirst,
			Callees: callees, First: at, Last: at + int64(callees-1)*int64(time.Millisecond), Prog: prog}}
		return e
	}
	for _, c := range []struct {
		name string
		e    func(i int) route.MeshRealmReg
	}{
		{"all take them, in payload passthru mode too (Go client callees)", func(i int) route.MeshRealmReg {
			e := entry(i, 1, route.MeshCapable{Known: true, Callees: 1})
			e.Prog.First, e.Prog.Last = e.First, e.Last
			e.ProgPPT = e.Prog
			return e
		}},
		{"all take them, none in payload passthru mode", func(i int) route.MeshRealmReg {
			e := entry(i, 1, route.MeshCapable{Known: true, Callees: 1})
			e.Prog.First, e.Prog.Last = e.First, e.Last
			e.ProgPPT = route.MeshCapable{Known: true}
			return e
		}},
		{"none takes them", func(i int) route.MeshRealmReg {
			e := entry(i, 1, route.MeshCapable{Known: true})
			e.ProgPPT = e.Prog
			return e
		}},
		{"the later of two takes them, in payload passthru mode too", func(i int) route.MeshRealmReg {
			e := entry(i, 2, route.MeshCapable{Known: true, Callees: 1})
			e.Prog.First, e.Prog.Last = e.Last, e.Last
			e.ProgPPT = e.Prog
			return e
		}},
	} {
		got := syncAnswerBytes(n, c.e)
		t.Logf("%s: %.1f MB (bound %.1f MB)", c.name, float64(got)/1e6, float64(bound)/1e6)
		if got > bound {
			t.Errorf("%s: the sync answer of %d registrations is %.1f MB, past 1.25 × the default max_outbound (%.1f MB): no peer takes it", c.name, n, float64(got)/1e6, float64(bound)/1e6)
		}
	}
}

// The bound holds whatever the registration times: an entry whose
// callees that take progressive call invocations registered long after
// (first) or before (last) its other callees carried that distance in
// nanoseconds, and each count in an annex of its own: 1,048,576 entries
// with a plain callee and one that takes them a day later were 93.3 MB
// (89 bytes an entry), a millisecond later 89.1 MB, past the 83.9 MB
// bound, so the node's directory could never be synced again. Now one
// annex, its times in a unit of the entry's own span (annexShifts).
func TestDirectorySyncAnnexFitsForAnyRegistrationTimes(t *testing.T) {
	const n = 1 << 20
	bound := int64(defaultMaxOutbound + defaultMaxOutbound/4)
	base := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC).UnixNano()
	uri := func(i int) string {
		s := strconv.Itoa(i)
		return "com.example.app.procedure.first." + "00000000"[len(s):] + s
	}
	var most int64
	for _, gap := range []time.Duration{time.Millisecond, 24 * time.Hour, 10 * 365 * 24 * time.Hour} {
		for _, inv := range []proto.Invoke{proto.InvokeFirst, proto.InvokeLast} {
			for _, c := range []struct {
				name     string
				callees  int
				prog, pt int
			}{
				{"a plain callee and one that takes them in payload passthru mode too", 2, 1, 1},
				{"a plain callee and one that takes them", 2, 1, 0},
				{"a plain callee, one that takes them and one that takes them in payload passthru mode too", 3, 2, 1},
			} {
				e := func(i int) route.MeshRealmReg {
					at := base + int64(i)*int64(time.Microsecond)
					e := route.MeshRealmReg{Realm: "realm1", MeshReg: route.MeshReg{Match: proto.MatchExact, URI: uri(i), Invoke: inv,
						Callees: c.callees, First: at, Last: at + int64(gap)}}
					// The plain callee first (first) or last (last): the
					// capable ones as far from it as the entry allows.
					pFirst, pLast := at+int64(gap)/2, e.Last
					tFirst, tLast := e.Last, e.Last
					if inv == proto.InvokeLast {
						pFirst, pLast = e.First, at+int64(gap)/2
						tFirst, tLast = e.First, e.First
					}
					if c.prog == 1 {
						pFirst, pLast = tFirst, tLast
					}
					e.Prog = route.MeshCapable{Known: true, Callees: c.prog, First: pFirst, Last: pLast}
					e.ProgPPT = route.MeshCapable{Known: true, Callees: c.pt}
					if c.pt > 0 {
						e.ProgPPT.First, e.ProgPPT.Last = tFirst, tLast
					}
					return e
				}
				got := syncAnswerBytes(n, e)
				most = max(most, got)
				if got > bound {
					t.Errorf("%v apart, %v: %s: the sync answer of %d registrations is %.1f MB, past 1.25 × the default max_outbound (%.1f MB): no peer takes it",
						gap, inv, c.name, n, float64(got)/1e6, float64(bound)/1e6)
				}
			}
		}
	}
	t.Logf("the largest: %.1f MB (bound %.1f MB)", float64(most)/1e6, float64(bound)/1e6)
}

// The times an annex carries are read back between the entry's first
// and last, in the order the callees registered, and rounded toward the
// entry's first (last) by at most the entry's span ÷ 2^20 (÷ 2^13 for
// those that take payload passthru mode too); exact while the span fits
// 21 bits of nanoseconds.
func TestAnnexTimesReadInOrder(t *testing.T) {
	base := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, span := range []int64{0, 1, 1 << 20, int64(time.Second), int64(24 * time.Hour), int64(100 * 365 * 24 * time.Hour)} {
		for _, inv := range []proto.Invoke{proto.InvokeFirst, proto.InvokeLast} {
			for _, frac := range [][2]int64{{0, 0}, {1, 3}, {1, 2}, {3, 4}, {4, 4}} {
				e := route.MeshRealmReg{Realm: "r", MeshReg: route.MeshReg{Match: proto.MatchExact, URI: "u", Invoke: inv, Callees: 3,
					First: base, Last: base + span}}
				p, q := base+span/4*frac[0], base+span/4*frac[1] // p, then q, later
				if inv == proto.InvokeFirst {
					e.Prog = route.MeshCapable{Known: true, Callees: 2, First: p, Last: e.Last}
					e.ProgPPT = route.MeshCapable{Known: true, Callees: 1, First: q, Last: e.Last}
				} else {
					e.Prog = route.MeshCapable{Known: true, Callees: 2, First: e.First, Last: q}
					e.ProgPPT = route.MeshCapable{Known: true, Callees: 1, First: e.First, Last: p}
				}
				var w wr
				if w.entry(e) != 2 {
					t.Fatalf("no annex for %+v", e)
				}
				r := rd{b: w}
				got, a := r.entry(), r.entry()
				if r.err != nil || !annex(&got, a) || len(r.b) != 0 {
					t.Fatalf("span %d: annex not read: %v", span, r.err)
				}
				tol, tolPPT := span>>20, span>>13
				if got.Prog.Callees != 2 || got.ProgPPT.Callees != 1 {
					t.Fatalf("span %d: counts read %d, %d, want 2, 1", span, got.Prog.Callees, got.ProgPPT.Callees)
				}
				if span < 1<<21 {
					tol, tolPPT = 0, 0
				}
				pw, tw, pg, tg := e.Prog.First, e.ProgPPT.First, got.Prog.First, got.ProgPPT.First
				if inv == proto.InvokeLast { // mirrored: distances from the last
					pw, tw, pg, tg = -e.Prog.Last, -e.ProgPPT.Last, -got.Prog.Last, -got.ProgPPT.Last
				}
				lo, hi := e.First, e.Last
				if inv == proto.InvokeLast {
					lo, hi = -e.Last, -e.First
				}
				if pg < lo || tg > hi || pg > tg || pg > pw || pw-pg > tol || tg > tw || tw-tg > tol+tolPPT {
					t.Errorf("%v, span %d, at %v of it: read %d and %d (from the entry's start), want %d and %d, in order, within [0, %d], at most %d and %d before",
						inv, span, frac, pg-lo, tg-lo, pw-lo, tw-lo, hi-lo, tol, tol+tolPPT)
				}
			}
		}
	}
}
