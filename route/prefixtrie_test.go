package route

import (
	"strconv"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// prefixAttack is a table holding n prefix patterns of distinct lengths,
// "a", "aa", … (n of them): what sessions at their subscription bound
// can make together (4 × 1,024 with the defaults; MaxURILen bounds n).
func prefixAttack(n int) *table[int] {
	tb := newTable[int]()
	base := strings.Repeat("a", n)
	for l := 1; l <= n; l++ {
		tb.put(proto.MatchPrefix, base[:l], l)
	}
	return tb
}

// TestPrefixMatchWorkFollowsMatches: finding the prefix patterns matching
// a URI costs steps in the number of patterns that match (each gets an
// EVENT or is a call's candidate), not in the number of distinct prefix
// lengths in the realm. Before, matchAll, best and coverAll probed the
// prefix map once per distinct length up to the URI's, each probe
// hashing that much of the URI: with the 4,095 patterns "a", "aa", …, a
// PUBLISH to any new 4 KiB topic (none matching) took 4,095 probes and
// ~8 MiB of hashing, 0.4 ms of its shard's loop (measured, table level),
// where a topic outside every pattern's first byte should take one step.
func TestPrefixMatchWorkFollowsMatches(t *testing.T) {
	const n = proto.MaxURILen - 1
	tb := prefixAttack(n)
	miss := []byte(strings.Repeat("b", proto.MaxURILen))
	if got, work := tb.prefixMatch(miss, nil); len(got) != 0 || work > 2 {
		t.Fatalf("a URI no pattern matches: %d matches, %d steps, want 0 matches in at most 2 steps", len(got), work)
	}
	// Diverging after k bytes: k patterns match.
	for _, k := range []int{0, 1, 17, 1000, n} {
		u := []byte(strings.Repeat("a", k) + strings.Repeat("b", proto.MaxURILen-k))
		got, work := tb.prefixMatch(u, nil)
		if len(got) != k {
			t.Fatalf("k=%d: %d matches, want %d", k, len(got), k)
		}
		for i, e := range got { // longest first
			if e != k-i {
				t.Fatalf("k=%d: match %d is %d, want %d (longest first)", k, i, e, k-i)
			}
		}
		if work > 2*k+2 {
			t.Fatalf("k=%d: %d steps for %d matches", k, work, k)
		}
		if e, ok := tb.best(u); ok != (k > 0) || (ok && e != k) {
			t.Fatalf("k=%d: best %d %v, want the longest, %d", k, e, ok, k)
		}
	}
	// Many siblings: the 4,095 patterns "x<i>." are a few steps each to
	// reach, whichever is asked.
	tb = newTable[int]()
	for i := 0; i < n; i++ {
		tb.put(proto.MatchPrefix, "x"+strconv.Itoa(i)+".", i+1)
	}
	got, work := tb.prefixMatch([]byte("x4094.y"), nil)
	if len(got) != 1 || got[0] != 4095 {
		t.Fatalf("x4094.y: matches %v, want [4095]", got)
	}
	if work > 16 {
		t.Fatalf("x4094.y: %d steps among 4,095 siblings", work)
	}
}

// BenchmarkPrefixMatchDistinctLengths is a lookup (uncached PUBLISH or
// CALL) of a 4 KiB URI in a table of n prefix patterns of distinct
// lengths, none matching it.
func BenchmarkPrefixMatchDistinctLengths(b *testing.B) {
	for _, n := range []int{16, 256, 4095} {
		b.Run("patterns="+strconv.Itoa(n), func(b *testing.B) {
			tb := prefixAttack(n)
			u := []byte(strings.Repeat("a", 1) + strings.Repeat("b", proto.MaxURILen-1))
			var dst []int
			b.ReportAllocs()
			for b.Loop() {
				dst = tb.matchAll(u, dst[:0])
			}
		})
	}
}

// TestPrefixGetBytesAllocatesNothing: getBytes finds a prefix
// registration for a call arriving from another mesh node (mesh_call.go,
// under the realm's read lock), once per call. Through the trie it
// converted the URI to a string for get, a copy on the heap (up to 4 KiB)
// for every such call; the map probe it replaced (m[string(b)]) copied
// nothing. The walk compares the bytes in place.
func TestPrefixGetBytesAllocatesNothing(t *testing.T) {
	tb := newTable[int]()
	u := "com.example." + strings.Repeat("x", 100)
	for i, p := range []string{u, u + "y", u[:20], "com.other."} {
		tb.put(proto.MatchPrefix, p, i+1)
	}
	for _, k := range []struct {
		uri  string
		want int
	}{{u, 1}, {u + "y", 2}, {u[:20], 3}, {u[:21], 0}, {u + "z", 0}, {"com.", 0}, {"", 0}} {
		b := []byte(k.uri)
		if n := testing.AllocsPerRun(100, func() {
			if e, ok := tb.getBytes(proto.MatchPrefix, b); ok != (k.want != 0) || e != k.want {
				t.Fatalf("getBytes(prefix, %q) = %d %v, want %d", k.uri, e, ok, k.want)
			}
		}); n != 0 {
			t.Errorf("getBytes(prefix, %d bytes) allocates %v times", len(b), n)
		}
	}
}
