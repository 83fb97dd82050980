package route

import (
	"slices"
	"strings"
)

// pnode is a node of the radix trie of a table's prefix patterns, their
// only index: each node is the bytes of the patterns on the way to it,
// label the ones from its parent. A PUBLISH or CALL walks it along its URI
// once, each step one byte's binary search among a node's children and
// one comparison of a label, so that finding the matching prefix patterns
// costs steps in the URI's length and in the patterns that match, not in
// the patterns held: a probe of a map per distinct prefix length cost an
// uncached 4 KiB URI 1 ms when the realm held 4,095 lengths (the patterns
// "a", "aa", …, four sessions' worth at the default bound), for one
// matching nothing (BenchmarkPrefixMatchDistinctLengths). A prefix
// subscription holds ~360 bytes of heap with it (~300 with the map,
// TestSubscriptionCountsWhatItHolds; within subOverhead).
//
// A label is a substring of a pattern in its node's subtree or a string
// of its own (split and merge copy it), so that a removed pattern's URI
// is not held by the trie. Guarded by Realm.mu, as the table.
type pnode[E comparable] struct {
	label string      // "" at the root only
	kids  []*pnode[E] // by their label's first byte, ascending
	entry E
	has   bool
}

// kid returns n's child whose label starts with c (nil if none), and
// its index, or where it would go.
func (n *pnode[E]) kid(c byte) (int, *pnode[E]) {
	lo, hi := 0, len(n.kids)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.kids[m].label[0] < c {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(n.kids) && n.kids[lo].label[0] == c {
		return lo, n.kids[lo]
	}
	return lo, nil
}

// put adds the pattern key with entry e, or replaces its entry. The
// empty pattern (an authorization rule's; it matches every URI) is the
// root's.
func (n *pnode[E]) put(key string, e E) {
	for key != "" {
		i, c := n.kid(key[0])
		if c == nil {
			n.kids = slices.Insert(n.kids, i, &pnode[E]{label: key, entry: e, has: true})
			return
		}
		k := 1
		for k < len(c.label) && k < len(key) && c.label[k] == key[k] {
			k++
		}
		if k < len(c.label) {
			mid := &pnode[E]{label: strings.Clone(c.label[:k]), kids: []*pnode[E]{c}}
			c.label = c.label[k:]
			n.kids[i] = mid
			c = mid
		}
		n, key = c, key[k:]
	}
	n.entry, n.has = e, true
}

// del removes the pattern key, reporting whether it was there, and
// merges what no longer branches.
func (n *pnode[E]) del(key string) bool {
	root := n
	var parent *pnode[E]
	at := 0
	for key != "" {
		i, c := n.kid(key[0])
		if c == nil || !strings.HasPrefix(key, c.label) {
			return false
		}
		parent, at = n, i
		n, key = c, key[len(c.label):]
	}
	if !n.has {
		return false
	}
	var zero E
	n.entry, n.has = zero, false
	if n == root {
		return true
	}
	switch len(n.kids) {
	case 0:
		parent.kids = slices.Delete(parent.kids, at, at+1)
		if len(parent.kids) == 0 {
			parent.kids = nil
		}
		if parent != root && !parent.has && len(parent.kids) == 1 {
			parent.merge()
		}
	case 1:
		n.merge()
	default:
		n.label = strings.Clone(n.label) // no longer its pattern's
	}
	return true
}

// merge makes n, holding no entry, one with its only child.
func (n *pnode[E]) merge() {
	k := n.kids[0]
	n.label += k.label
	n.kids, n.entry, n.has = k.kids, k.entry, k.has
}

// get returns the entry of exactly the pattern key.
func (n *pnode[E]) get(key string) (e E, ok bool) {
	for key != "" {
		_, c := n.kid(key[0])
		if c == nil || !strings.HasPrefix(key, c.label) {
			return e, false
		}
		n, key = c, key[len(c.label):]
	}
	return n.entry, n.has
}

// getBytes is get for a key in a byte slice, compared in place: it does
// not allocate (a call from another node looks its prefix registration
// up so, once per call; string(key) for get copied a URI over 32 bytes
// to the heap each time).
func (n *pnode[E]) getBytes(key []byte) (e E, ok bool) {
	for len(key) > 0 {
		_, c := n.kid(key[0])
		if c == nil || len(c.label) > len(key) || string(key[:len(c.label)]) != c.label {
			return e, false
		}
		n, key = c, key[len(c.label):]
	}
	return n.entry, n.has
}

// each calls fn with every entry of n's subtree.
func (n *pnode[E]) each(fn func(E)) {
	if n.has {
		fn(n.entry)
	}
	for _, c := range n.kids {
		c.each(fn)
	}
}

// prefixMatch appends the entries of the prefix patterns u starts with,
// the longest first, and returns the steps it took (for tests). It does
// not allocate beyond growing dst.
func (t *table[E]) prefixMatch(u []byte, dst []E) ([]E, int) {
	start, steps := len(dst), 0
	n := &t.ptrie
	if n.has {
		dst = append(dst, n.entry)
	}
	for rest := u; len(rest) > 0; {
		steps++
		_, c := n.kid(rest[0])
		if c == nil || len(c.label) > len(rest) || string(rest[:len(c.label)]) != c.label {
			break
		}
		rest, n = rest[len(c.label):], c
		if n.has {
			dst = append(dst, n.entry)
		}
	}
	slices.Reverse(dst[start:])
	return dst, steps
}

// prefixCount returns how many entries prefixMatch appends for u.
func (t *table[E]) prefixCount(u []byte) int {
	n, k := &t.ptrie, 0
	if n.has {
		k++
	}
	for rest := u; len(rest) > 0; {
		_, c := n.kid(rest[0])
		if c == nil || len(c.label) > len(rest) || string(rest[:len(c.label)]) != c.label {
			break
		}
		rest, n = rest[len(c.label):], c
		if n.has {
			k++
		}
	}
	return k
}

// longest returns the entry of the longest prefix pattern u starts with.
func (n *pnode[E]) longest(u []byte) (e E, ok bool) {
	e, ok = n.entry, n.has
	for rest := u; len(rest) > 0; {
		_, c := n.kid(rest[0])
		if c == nil || len(c.label) > len(rest) || string(rest[:len(c.label)]) != c.label {
			break
		}
		rest, n = rest[len(c.label):], c
		if n.has {
			e, ok = n.entry, true
		}
	}
	return e, ok
}
