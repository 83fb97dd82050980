package route

import (
	"slices"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// FuzzTableDifferential checks the registration and subscription index
// (table: a map for exact entries, a radix trie of bytes for prefix ones,
// a trie per component count for wildcard ones) against a brute-force model, over sequences of puts,
// deletes and lookups drawn from a small alphabet so that patterns
// collide: matchAll finds exactly the entries patternMatches accepts,
// best picks what WAMP's "calls matching multiple registrations" rule
// picks (exact, else the longest prefix, else the wildcard pattern whose
// wildcards come latest), coverAll finds exactly the covering entries,
// and get, all and the count agree with the model after every step
// (deletes prune the trie: a pruned node must not lose a neighbour).
func FuzzTableDifferential(f *testing.F) {
	f.Add([]byte{0, 1, 3, 0, 2, 4, 2, 0, 3, 3, 1, 1, 3})
	f.Add([]byte{0x10, 3, 0, 3, 0x12, 4, 2, 2, 0, 0x13, 1, 1, 3, 0x03, 0, 2, 3, 0x01, 3, 0, 3})
	f.Add([]byte{0x20, 2, 0, 0, 0x21, 3, 0, 2, 0, 0x02, 3, 0, 2, 1, 0x23, 2, 0, 0})
	// Two wildcard patterns matching "a.b", "a." and ".b": a call goes to
	// "a." (its wildcard comes later); then "a.b" by prefix, then exact.
	f.Add([]byte{0x20, 2, 0, 2, 0x20, 2, 2, 1, 0x02, 3, 0, 2, 1, 0x10, 2, 0, 2, 0x02, 3, 0, 2, 1,
		0x00, 3, 0, 2, 1, 0x02, 3, 0, 2, 1, 0x23, 3, 0, 2, 2, 0x13, 3, 0, 2, 1, 0x21, 2, 0, 2, 0x02, 3, 0, 2, 1, 0x13, 2, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1024 {
			data = data[:1024] // the checks after each step are quadratic
		}
		type key struct {
			m   proto.Match
			uri string
		}
		tb := newTable[int]()
		model := map[key]int{}
		next := 0
		// uri reads a length byte, then that many symbols of "ab.".
		uri := func() string {
			if len(data) == 0 {
				return ""
			}
			n := int(data[0]) % 7
			data = data[1:]
			var b strings.Builder
			for i := 0; i < n && len(data) > 0; i++ {
				b.WriteByte("ab."[int(data[0])%3])
				data = data[1:]
			}
			return b.String()
		}
		matches := []proto.Match{proto.MatchExact, proto.MatchPrefix, proto.MatchWildcard}
		for len(data) > 0 {
			op := data[0]
			data = data[1:]
			m := matches[int(op>>4)%3]
			u := uri()
			switch op & 3 {
			case 0: // put
				if !proto.ValidPattern([]byte(u), proto.URILoose, m) {
					continue
				}
				if _, ok := model[key{m, u}]; ok {
					continue // the caller checks (match, uri) is free
				}
				next++
				var with int
				if m == proto.MatchWildcard {
					with = tb.wildWalkWith(u)
				}
				tb.put(m, u, next)
				model[key{m, u}] = next
				if m == proto.MatchWildcard && tb.wild[components(u)].walk != int32(with) {
					t.Fatalf("wildWalkWith(%q) = %d, the walk after it %d (table %v)", u, with, tb.wild[components(u)].walk, model)
				}
			case 1: // del
				tb.del(m, u)
				delete(model, key{m, u})
			case 2: // a concrete URI: matchAll, best
				if !proto.ValidURI([]byte(u), proto.URILoose) {
					continue
				}
				var want []int
				for k, e := range model {
					if patternMatches(k.m, k.uri, u) {
						want = append(want, e)
					}
				}
				got := tb.matchAll([]byte(u), nil)
				if _, visited := tb.matchCost([]byte(u)); tb.wild[components(u)] != nil && visited > int(tb.wild[components(u)].walk) {
					t.Fatalf("matchAll(%q) visits %d nodes, past its bound %d (table %v)", u, visited, tb.wild[components(u)].walk, model)
				}
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("matchAll(%q) = %v, want %v (table %v)", u, got, want, model)
				}
				wantBest, ok := refBest(model2list(model, func(k key) (proto.Match, string) { return k.m, k.uri }), u)
				gotBest, gotOK := tb.best([]byte(u))
				if ok != gotOK || wantBest != gotBest {
					t.Fatalf("best(%q) = %d %v, want %d %v (table %v)", u, gotBest, gotOK, wantBest, ok, model)
				}
			case 3: // a pattern: coverAll
				if m == proto.MatchExact || !proto.ValidPattern([]byte(u), proto.URILoose, m) {
					continue
				}
				var want []int
				for k, e := range model {
					switch k.m {
					case proto.MatchPrefix:
						if strings.HasPrefix(u, k.uri) {
							want = append(want, e)
						}
					case proto.MatchWildcard:
						if m == proto.MatchWildcard && covers(k.uri, u) {
							want = append(want, e)
						}
					}
				}
				got := tb.coverAll(m, []byte(u), nil)
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("coverAll(%v, %q) = %v, want %v (table %v)", m, u, got, want, model)
				}
			}
			checkWalks(t, tb)
			// get, all and the count agree with the model.
			if tb.n != len(model) {
				t.Fatalf("count %d, model %d", tb.n, len(model))
			}
			for k, e := range model {
				if got, ok := tb.get(k.m, k.uri); !ok || got != e {
					t.Fatalf("get(%v, %q) = %d %v, want %d", k.m, k.uri, got, ok, e)
				}
				if got, ok := tb.getBytes(k.m, []byte(k.uri)); !ok || got != e {
					t.Fatalf("getBytes(%v, %q) = %d %v, want %d", k.m, k.uri, got, ok, e)
				}
			}
			seen := map[int]proto.Match{}
			tb.all(func(m proto.Match, e int) { seen[e] = m })
			for k, e := range model {
				if m, ok := seen[e]; !ok || m != k.m {
					t.Fatalf("all() lacks %v %q (%d): %v", k.m, k.uri, e, seen)
				}
			}
			if len(seen) != len(model) {
				t.Fatalf("all() gave %d entries, model %d", seen, len(model))
			}
		}
	})
}

type refEntry struct {
	m   proto.Match
	uri string
	e   int
}

func model2list[K comparable](model map[K]int, kf func(K) (proto.Match, string)) []refEntry {
	var l []refEntry
	for k, e := range model {
		m, u := kf(k)
		l = append(l, refEntry{m, u, e})
	}
	return l
}

// refBest is the routing rule by brute force: an exact match, else the
// longest matching prefix, else of the matching wildcard patterns the one
// whose first wildcard (compared position by position) comes latest.
func refBest(l []refEntry, u string) (int, bool) {
	best, bestLen := -1, -1
	var bestW []string
	for _, r := range l {
		if !patternMatches(r.m, r.uri, u) {
			continue
		}
		switch r.m {
		case proto.MatchExact:
			return r.e, true
		case proto.MatchPrefix:
			if len(r.uri) > bestLen {
				best, bestLen, bestW = r.e, len(r.uri), nil
			}
		case proto.MatchWildcard:
			if bestLen >= 0 {
				continue
			}
			w := strings.Split(r.uri, ".")
			if bestW == nil || laterWildcards(w, bestW) {
				best, bestW = r.e, w
			}
		}
	}
	if best < 0 {
		return 0, false
	}
	return best, true
}

// laterWildcards reports whether pattern a (components) beats b: at the
// first position where one is concrete and the other a wildcard, a is
// the concrete one.
func laterWildcards(a, b []string) bool {
	for i := range a {
		if (a[i] == "") != (b[i] == "") {
			return a[i] != ""
		}
	}
	return false
}

// covers reports whether wildcard entry p matches every URI wildcard
// pattern u matches: as many components, each p's empty or u's.
func covers(p, u string) bool {
	pc, uc := strings.Split(p, "."), strings.Split(u, ".")
	if len(pc) != len(uc) {
		return false
	}
	for i := range pc {
		if pc[i] != "" && pc[i] != uc[i] {
			return false
		}
	}
	return true
}
