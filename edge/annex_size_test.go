package edge

import (
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// syncAnswerBytes returns the bytes of the sync answer that sendDirectory
// sends for n entries, all of one size, as entry(i) gives them: 1/16 of
// them are encoded (wr.entry, with their annexes), times 16 (under -race
// all 1,048,576 took 1.7 s a case), plus a part's framing for each
// syncPart bytes (boot, version, count, index, whether more follow, mesh
// version).
func syncAnswerBytes(n int, entry func(i int) route.MeshRealmReg) int64 {
	var total int64
	var w wr
	size := -1
	for i := range n / 16 {
		w = w[:0]
		w.entry(entry(i))
		if size >= 0 && len(w) != size {
			panic("entries of different sizes")
		}
		size = len(w)
		total += int64(len(w))
	}
	total *= 16
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
