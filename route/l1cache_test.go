package route

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// Unit tests of the shards' lookup caches (Realm.l1): which entries a change
// drops, and that a cached lookup always equals a lookup in the table.

// refMatches is WAMP's pattern match, independent of the table's.
func refMatches(match, pattern, uri string) bool {
	switch match {
	case "prefix":
		return strings.HasPrefix(uri, pattern)
	case "wildcard":
		return proto.MatchWildcardURI([]byte(pattern), []byte(uri))
	}
	return pattern == uri
}

// TestPatternMatchesTable: patternMatches, which decides which cache
// entries a pattern's change drops, agrees with the table's own matching
// for every pattern and URI of a small alphabet.
func TestPatternMatchesTable(t *testing.T) {
	var uris, pats []string
	var gen func(prefix string, depth int, comps []string, out *[]string)
	gen = func(prefix string, depth int, comps []string, out *[]string) {
		for _, c := range comps {
			u := prefix + c
			*out = append(*out, u)
			if depth > 1 {
				gen(u+".", depth-1, comps, out)
			}
		}
	}
	gen("", 3, []string{"a", "b", "ab"}, &uris)
	gen("", 3, []string{"a", "b", "ab", ""}, &pats)
	matches := map[proto.Match]string{proto.MatchExact: "exact", proto.MatchPrefix: "prefix", proto.MatchWildcard: "wildcard"}
	for m := range matches {
		for _, p := range pats {
			tb := newTable[int]()
			tb.put(m, p, 1)
			for _, u := range uris {
				want := len(tb.matchAll([]byte(u), nil)) == 1
				if got := patternMatches(m, p, u); got != want {
					t.Fatalf("patternMatches(%s, %q, %q) = %v, the table says %v", matches[m], p, u, got, want)
				}
				if ref := refMatches(matches[m], p, u); ref != want {
					t.Fatalf("%s %q on %q: the table says %v, WAMP %v", matches[m], p, u, want, ref)
				}
			}
		}
	}
}

// TestL1MapDrop: drop removes every entry a change can alter, keeps the
// others while the scan is within its bounds, and clears the map past them.
func TestL1MapDrop(t *testing.T) {
	fill := func(uris ...string) *l1map[int] {
		c := &l1map[int]{m: map[string]int{}}
		for i, u := range uris {
			c.m[u] = i
		}
		return c
	}
	keys := func(c *l1map[int]) string {
		var out []string
		for _, u := range []string{"a.b.c", "a.b.d", "a.x.c", "b.b.c", "a.b", "a"} {
			if _, ok := c.m[u]; ok {
				out = append(out, u)
			}
		}
		return strings.Join(out, " ")
	}
	all := []string{"a.b.c", "a.b.d", "a.x.c", "b.b.c", "a.b", "a"}
	for _, tc := range []struct {
		changes []l1change
		want    string
	}{
		{nil, "a.b.c a.b.d a.x.c b.b.c a.b a"},
		{[]l1change{{proto.MatchExact, "a.b.c"}}, "a.b.d a.x.c b.b.c a.b a"},
		{[]l1change{{proto.MatchExact, "zzz"}}, "a.b.c a.b.d a.x.c b.b.c a.b a"},
		{[]l1change{{proto.MatchPrefix, "a.b"}}, "a.x.c b.b.c a"},
		{[]l1change{{proto.MatchPrefix, "a.b."}}, "a.x.c b.b.c a.b a"},
		{[]l1change{{proto.MatchWildcard, "a..c"}}, "a.b.d b.b.c a.b a"},
		{[]l1change{{proto.MatchWildcard, "..c"}}, "a.b.d a.b a"},
		{[]l1change{{proto.MatchWildcard, "."}}, "a.b.c a.b.d a.x.c b.b.c a"},
		{[]l1change{{proto.MatchWildcard, "a.b.c"}, {proto.MatchExact, "a"}}, "a.b.d a.x.c b.b.c a.b"},
		// A pattern added and removed counts once.
		{[]l1change{{proto.MatchPrefix, "b."}, {proto.MatchPrefix, "b."}}, "a.b.c a.b.d a.x.c a.b a"},
		// The same URI with two policies is two patterns.
		{[]l1change{{proto.MatchPrefix, "a.b"}, {proto.MatchWildcard, "a.b"}}, "a.x.c b.b.c a"},
	} {
		c := fill(all...)
		c.drop(tc.changes)
		if got := keys(c); got != tc.want {
			t.Errorf("drop(%v) kept %q, want %q", tc.changes, got, tc.want)
		}
	}
	// Past l1Patterns distinct patterns, or l1ScanMax checks, the map is
	// cleared.
	var many []l1change
	for i := 0; i <= l1Patterns; i++ {
		many = append(many, l1change{proto.MatchPrefix, fmt.Sprintf("z%d", i)})
	}
	c := fill(all...)
	c.drop(many)
	if len(c.m) != 0 {
		t.Errorf("%d distinct patterns kept %d entries, want a cleared map", len(many), len(c.m))
	}
	big := fill()
	for i := 0; i < l1ScanMax/2+1; i++ {
		big.m[fmt.Sprintf("q.%d", i)] = i
	}
	big.drop([]l1change{{proto.MatchPrefix, "z1"}, {proto.MatchPrefix, "z2"}})
	if len(big.m) != 0 {
		t.Errorf("a scan past l1ScanMax kept %d entries, want a cleared map", len(big.m))
	}
}

// TestLookupCacheModel changes the realm's tables at random (exact, prefix
// and wildcard entries of a small alphabet) and looks URIs up on shards
// that fall behind by random amounts, some by more than the logs keep:
// every cached lookup equals a lookup in the table.
func TestLookupCacheModel(t *testing.T) {
	const shards = 4
	r, err := New(Config{Realms: []RealmConfig{{Name: "realm1"}}, Shards: shards, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range shards {
		r.Shard(i).Start(nopExec{})
	}
	defer r.Close()
	rm := r.Realm("realm1")
	var uris, pats []string
	for _, a := range []string{"a", "b"} {
		uris = append(uris, a)
		for _, b := range []string{"a", "b", "c"} {
			uris = append(uris, a+"."+b)
			for _, c := range []string{"a", "b"} {
				uris = append(uris, a+"."+b+"."+c)
			}
		}
	}
	for _, a := range []string{"a", "b", ""} {
		pats = append(pats, a)
		for _, b := range []string{"a", "b", ""} {
			pats = append(pats, a+"."+b)
			for _, c := range []string{"a", ""} {
				pats = append(pats, a+"."+b+"."+c)
			}
		}
	}
	policies := []proto.Match{proto.MatchExact, proto.MatchPrefix, proto.MatchWildcard}
	rng := rand.New(rand.NewPCG(3, 4))
	// Shard i looks up with probability lookP[i] per step: shard 3 falls
	// behind by more than l1LogSize changes now and then.
	lookP := [shards]float64{0.9, 0.3, 0.05, 0.004}
	for step := 0; step < 60000; step++ {
		// Every other 500 steps, exact entries only: then the logs hold
		// no pattern change that would clear a lagging cache anyway.
		m := proto.MatchExact
		if step/500%2 == 0 {
			m = policies[rng.IntN(len(policies))]
		}
		var uri string
		if m == proto.MatchExact {
			uri = uris[rng.IntN(len(uris))]
		} else {
			uri = pats[rng.IntN(len(pats))]
			if uri == "" {
				continue
			}
		}
		rm.mu.Lock()
		if rng.IntN(2) == 0 {
			if _, ok := rm.subs.get(m, uri); ok {
				rm.subs.del(m, uri)
			} else {
				rm.subs.put(m, uri, &subscription{uri: uri, match: m})
			}
			rm.subChanged(m, uri)
		} else {
			if _, ok := rm.regs.get(m, uri); ok {
				rm.regs.del(m, uri)
			} else {
				rm.regs.put(m, uri, &registration{uri: uri, match: m})
			}
			rm.regChanged(m, uri)
		}
		rm.mu.Unlock()
		for i := range shards {
			if rng.Float64() >= lookP[i] {
				continue
			}
			for range 3 {
				u := []byte(uris[rng.IntN(len(uris))])
				rm.mu.RLock()
				wantReg, _ := rm.regs.best(u)
				wantSubs := rm.subs.matchAll(u, nil)
				rm.mu.RUnlock()
				if got := rm.lookupReg(i, u); got != wantReg {
					t.Fatalf("step %d shard %d: lookupReg(%s) = %v, the table has %v", step, i, u, got, wantReg)
				}
				if got := rm.lookupSubs(i, u); !sameSubs(got, wantSubs) {
					t.Fatalf("step %d shard %d: lookupSubs(%s) = %d entries, the table has %d", step, i, u, len(got), len(wantSubs))
				}
			}
		}
	}
}

func sameSubs(a, b []*subscription) bool {
	if len(a) != len(b) {
		return false
	}
	in := map[*subscription]bool{}
	for _, s := range a {
		in[s] = true
	}
	for _, s := range b {
		if !in[s] {
			return false
		}
	}
	return true
}

// TestLookupCacheLogWrap: a shard that falls behind by more changes than
// the logs keep still drops its entries that the forgotten changes
// altered (it clears its cache).
func TestLookupCacheLogWrap(t *testing.T) {
	for _, m := range []proto.Match{proto.MatchExact, proto.MatchPrefix, proto.MatchWildcard} {
		r, err := New(Config{Realms: []RealmConfig{{Name: "realm1"}}, Shards: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			r.Shard(i).Start(nopExec{})
		}
		rm := r.Realm("realm1")
		uri := map[proto.Match]string{proto.MatchExact: "com.x.t", proto.MatchPrefix: "com.x.", proto.MatchWildcard: "com..t"}[m]
		u := []byte("com.x.t")
		for i := range 2 {
			if rm.lookupReg(i, u) != nil || len(rm.lookupSubs(i, u)) != 0 {
				t.Fatal("found entries in empty tables")
			}
		}
		reg, sub := &registration{uri: uri, match: m}, &subscription{uri: uri, match: m}
		rm.mu.Lock()
		rm.regs.put(m, uri, reg)
		rm.regChanged(m, uri)
		rm.subs.put(m, uri, sub)
		rm.subChanged(m, uri)
		rm.mu.Unlock()
		// Shard 0 keeps up; shard 1 looks up again only after the logs
		// forgot the change.
		for k := 0; k <= l1LogSize; k++ {
			other := fmt.Sprintf("com.other.%d", k)
			rm.mu.Lock()
			rm.regs.put(proto.MatchExact, other, &registration{uri: other})
			rm.regChanged(proto.MatchExact, other)
			rm.subs.put(proto.MatchExact, other, &subscription{uri: other})
			rm.subChanged(proto.MatchExact, other)
			rm.mu.Unlock()
			if got := rm.lookupReg(0, u); got != reg {
				t.Fatalf("%v: shard 0 found registration %v, want %v", m, got, reg)
			}
		}
		for i := range 2 {
			if got := rm.lookupReg(i, u); got != reg {
				t.Fatalf("%v: shard %d found registration %v, want %v", m, i, got, reg)
			}
			if got := rm.lookupSubs(i, u); len(got) != 1 || got[0] != sub {
				t.Fatalf("%v: shard %d found %d subscriptions, want the new one", m, i, len(got))
			}
		}
		r.Close()
	}
}
