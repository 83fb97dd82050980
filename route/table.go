package route

import (
	"github.com/edgewamp/edgewamp/proto"
)

// table indexes entries (registrations or subscriptions) by URI and match
// policy, and finds the entries matching a concrete URI without scanning
// all patterns:
//
//   - exact: one map lookup;
//   - prefix: a radix trie over the patterns' bytes
//     (WAMP prefixes are string prefixes, not component prefixes, so a
//     component trie would not do), walked along the URI once: the steps
//     follow the patterns that match, not the patterns held (prefixtrie.go;
//     a probe of the map per distinct prefix length cost 1 ms an uncached
//     4 KiB URI with 4,095 lengths);
//   - wildcard: a trie over URI components per component count, where an
//     empty pattern component is a wildcard child.
//
// A table is not safe for concurrent use; Realm.mu guards it.
type table[E comparable] struct {
	exact map[string]E
	ptrie pnode[E] // the prefix patterns by byte (prefixtrie.go)
	wild  map[int]*wnode[E]
	n     int
	// exactPeak: the most entries exact held since it was last checked
	// (shrinkDue).
	exactPeak int
}

type wnode[E comparable] struct {
	kids  map[string]*wnode[E]
	any   *wnode[E] // the wildcard (empty component) child
	entry E
	has   bool
	// walk is the most nodes of n's subtree a walk of one URI from n
	// (wmatchAll, wbest) can visit: the costliest literal child's
	// 1+walk, plus the wildcard child's 1+walk, 0 at a pattern's last
	// component. An upper bound (the two children may want different
	// URIs), kept as patterns come and go (wput, wdel), so that a
	// SUBSCRIBE or REGISTER can be refused before it makes every
	// PUBLISH or CALL to a new URI walk too much (wildWalkWith). In the
	// padding after has: a node is 32 bytes still.
	walk int32
}

// anyWalk is what n's wildcard child adds to n.walk.
func (n *wnode[E]) anyWalk() int32 {
	if n.any == nil {
		return 0
	}
	return 1 + n.any.walk
}

// kidsWalk is the costliest literal child's 1+walk (0 for none),
// stopping at atMost, which none passes.
func (n *wnode[E]) kidsWalk(atMost int32) int32 {
	var w int32
	for _, k := range n.kids {
		if w = max(w, 1+k.walk); w >= atMost {
			break
		}
	}
	return w
}

func newTable[E comparable]() *table[E] {
	return &table[E]{
		exact: map[string]E{},
		wild:  map[int]*wnode[E]{},
	}
}

// get returns the entry for exactly this (match, uri).
func (t *table[E]) get(m proto.Match, uri string) (E, bool) {
	switch m {
	case proto.MatchPrefix:
		return t.ptrie.get(uri)
	case proto.MatchWildcard:
		n := t.wnode(uri)
		if n == nil || !n.has {
			var zero E
			return zero, false
		}
		return n.entry, true
	}
	e, ok := t.exact[uri]
	return e, ok
}

// getBytes is get for a URI in a byte slice: the exact and prefix
// lookups copy nothing.
func (t *table[E]) getBytes(m proto.Match, uri []byte) (E, bool) {
	switch m {
	case proto.MatchPrefix:
		return t.ptrie.getBytes(uri)
	case proto.MatchWildcard:
		return t.get(m, string(uri))
	}
	e, ok := t.exact[string(uri)]
	return e, ok
}

// put adds an entry; the caller has checked that (match, uri) is free.
func (t *table[E]) put(m proto.Match, uri string, e E) {
	t.n++
	switch m {
	case proto.MatchPrefix:
		t.ptrie.put(uri, e)
	case proto.MatchWildcard:
		t.wput(uri, e)
	default:
		t.exact[uri] = e
	}
}

// del removes the entry for (match, uri), if any.
func (t *table[E]) del(m proto.Match, uri string) {
	var zero E
	switch m {
	case proto.MatchPrefix:
		if !t.ptrie.del(uri) {
			return
		}
	case proto.MatchWildcard:
		if !t.wdel(uri) {
			return
		}
	default:
		n := len(t.exact)
		if _, ok := t.exact[uri]; !ok {
			return
		}
		delete(t.exact, uri)
		if shrinkDue(&t.exactPeak, n, len(t.exact)) {
			shrinkMap(&t.exact, &t.exactPeak)
		}
	}
	_ = zero
	t.n--
}

// wnode finds the trie node of a wildcard pattern (nil if none).
func (t *table[E]) wnode(uri string) *wnode[E] {
	cur := t.wild[components(uri)]
	for rest := uri; cur != nil; {
		comp, next, last := cutComponent(rest)
		if comp == "" {
			cur = cur.any
		} else {
			cur = cur.kids[comp]
		}
		if last {
			return cur
		}
		rest = next
	}
	return nil
}

// wput adds (or replaces) a wildcard pattern's entry, making its nodes,
// and raises the walks (wnode.walk) of the nodes on its way.
func (t *table[E]) wput(uri string, e E) {
	n := components(uri)
	root := t.wild[n]
	if root == nil {
		root = &wnode[E]{}
		t.wild[n] = root
	}
	var put func(cur *wnode[E], rest string)
	put = func(cur *wnode[E], rest string) {
		comp, next, last := cutComponent(rest)
		child := cur.any
		if comp != "" {
			child = cur.kids[comp]
		}
		made := child == nil
		if made {
			child = &wnode[E]{}
			if comp == "" {
				cur.any = child
			} else {
				if cur.kids == nil {
					cur.kids = map[string]*wnode[E]{}
				}
				cur.kids[comp] = child
			}
		}
		old := child.walk
		if last {
			child.entry, child.has = e, true
		} else {
			put(child, next)
		}
		if comp == "" {
			oldAny := int32(0)
			if !made {
				oldAny = 1 + old
			}
			cur.walk += child.walk + 1 - oldAny
		} else if k, kw := 1+child.walk, cur.walk-cur.anyWalk(); k > kw {
			cur.walk += k - kw
		}
	}
	put(root, uri)
}

// wildWalkWith returns the most nodes of the wildcard index a PUBLISH or
// CALL to one URI of as many components as the wildcard pattern uri
// could visit once uri is added (its root's wnode.walk then), changing
// nothing. Cold path (SUBSCRIBE, REGISTER); allocates nothing.
func (t *table[E]) wildWalkWith(uri string) int {
	root := t.wild[components(uri)]
	if root == nil {
		return components(uri) // a new chain
	}
	var with func(cur *wnode[E], rest string) int32
	with = func(cur *wnode[E], rest string) int32 {
		comp, next, last := cutComponent(rest)
		child := cur.any
		if comp != "" {
			child = cur.kids[comp]
		}
		var w int32 // child's walk with uri
		switch {
		case child == nil && !last:
			w = int32(components(next)) // a new chain below it
		case child != nil && !last:
			w = with(child, next)
		}
		if comp == "" {
			return cur.walk - cur.anyWalk() + 1 + w
		}
		return max(cur.walk, 1+w+cur.anyWalk())
	}
	return int(with(root, uri))
}

// wildWalkPast reports whether adding the wildcard pattern uri would let
// a walk of the index pass bound: its root's walk with uri (wildWalkWith)
// past bound and past the walk the root has now. Other nodes' patterns
// are put unchecked (they cannot be refused here), so that after a
// partition the walk may be past bound already: a pattern that adds
// nothing to it is still taken (before, every new pattern of its
// component count was refused, on every node, for as long as the others
// stayed). Cold path (SUBSCRIBE, REGISTER).
func (t *table[E]) wildWalkPast(uri string, bound int) bool {
	w := t.wildWalkWith(uri)
	if w <= bound {
		return false
	}
	root := t.wild[components(uri)]
	return root == nil || w > int(root.walk)
}

// wdel removes a wildcard pattern and prunes empty nodes.
func (t *table[E]) wdel(uri string) bool {
	n := components(uri)
	root := t.wild[n]
	if root == nil {
		return false
	}
	var zero E
	var del func(cur *wnode[E], rest string) (found bool)
	del = func(cur *wnode[E], rest string) bool {
		comp, next, last := cutComponent(rest)
		var child *wnode[E]
		if comp == "" {
			child = cur.any
		} else {
			child = cur.kids[comp]
		}
		if child == nil {
			return false
		}
		old := child.walk
		if last {
			if !child.has {
				return false
			}
			child.entry, child.has = zero, false
		} else if !del(child, next) {
			return false
		}
		gone := !child.has && child.any == nil && len(child.kids) == 0
		if comp == "" {
			kw := cur.walk - (1 + old)
			if gone {
				cur.any = nil
			}
			cur.walk = kw + cur.anyWalk()
			return true
		}
		if gone {
			delete(cur.kids, comp)
		}
		// Lowered only when child was the costliest literal child:
		// the others are looked at then, up to one as costly as it was.
		if kw := cur.walk - cur.anyWalk(); 1+old == kw && (gone || child.walk < old) {
			cur.walk = cur.kidsWalk(kw) + cur.anyWalk()
		}
		return true
	}
	ok := del(root, uri)
	if root.any == nil && len(root.kids) == 0 {
		delete(t.wild, n)
	}
	return ok
}

// matchAll appends every entry matching the concrete URI u: the exact one,
// every prefix one, every wildcard one. It does not allocate beyond growing
// dst.
func (t *table[E]) matchAll(u []byte, dst []E) []E {
	if e, ok := t.exact[string(u)]; ok {
		dst = append(dst, e)
	}
	dst, _ = t.prefixMatch(u, dst)
	if len(t.wild) > 0 {
		if root := t.wild[componentsB(u)]; root != nil {
			dst = wmatchAll(root, u, dst)
		}
	}
	return dst
}

// coverAll appends every prefix and wildcard entry that matches every URI
// the prefix or wildcard pattern u (match m) matches, the entries
// covering it: a prefix entry u starts with (a prefix entry has no empty
// component, so it ends within the components u fixes before its first
// wildcard); for a wildcard u, also every wildcard entry of as many
// components whose each component is u's or empty (matchAll's walk with
// u taken for a concrete URI: an empty component of u is followed only
// by the entries' wildcard children). An exact entry covers no pattern,
// nor a wildcard entry a prefix pattern (which matches URIs of any
// length).
func (t *table[E]) coverAll(m proto.Match, u []byte, dst []E) []E {
	dst, _ = t.prefixMatch(u, dst)
	if m == proto.MatchWildcard && len(t.wild) > 0 {
		if root := t.wild[componentsB(u)]; root != nil {
			dst = wmatchAll(root, u, dst)
		}
	}
	return dst
}

// matchCost returns how many entries match u and how many wildcard
// nodes matchAll visits for it, collecting nothing: what a
// wamp.subscription.match of u walks (metaWalks).
func (t *table[E]) matchCost(u []byte) (matched, visited int) {
	if _, ok := t.exact[string(u)]; ok {
		matched++
	}
	matched += t.prefixCount(u)
	if len(t.wild) > 0 {
		if root := t.wild[componentsB(u)]; root != nil {
			m, v := wmatchCount(root, u)
			matched, visited = matched+m, v
		}
	}
	return matched, visited
}

// wmatchCount is wmatchAll counting: the entries it would append and the
// nodes it visits.
func wmatchCount[E comparable](cur *wnode[E], rest []byte) (matched, visited int) {
	comp, next, last := cutComponentB(rest)
	for _, child := range [2]*wnode[E]{cur.kids[string(comp)], cur.any} {
		if child == nil {
			continue
		}
		visited++
		if last {
			if child.has {
				matched++
			}
			continue
		}
		m, v := wmatchCount(child, next)
		matched, visited = matched+m, visited+v
	}
	return matched, visited
}

func wmatchAll[E comparable](cur *wnode[E], rest []byte, dst []E) []E {
	comp, next, last := cutComponentB(rest)
	for _, child := range [2]*wnode[E]{cur.kids[string(comp)], cur.any} {
		if child == nil {
			continue
		}
		if last {
			if child.has {
				dst = append(dst, child.entry)
			}
			continue
		}
		dst = wmatchAll(child, next, dst)
	}
	return dst
}

// best returns the single entry a call to u is routed to (WAMP §Pattern-based
// Registration, "Calls matching multiple registrations"): the exact match;
// else the longest prefix; else the wildcard pattern whose wildcards come
// latest (compared position by position), which a depth-first walk that
// tries the concrete component before the wildcard finds first.
func (t *table[E]) best(u []byte) (E, bool) {
	if e, ok := t.exact[string(u)]; ok {
		return e, true
	}
	if e, ok := t.ptrie.longest(u); ok {
		return e, true
	}
	if len(t.wild) > 0 {
		if root := t.wild[componentsB(u)]; root != nil {
			return wbest(root, u)
		}
	}
	var zero E
	return zero, false
}

// bestCost returns how many wildcard nodes best visits for u, finding
// nothing (a wamp.registration.match of u: metaWalks).
func (t *table[E]) bestCost(u []byte) int {
	if _, ok := t.exact[string(u)]; ok {
		return 0
	}
	if _, ok := t.ptrie.longest(u); ok {
		return 0
	}
	if len(t.wild) > 0 {
		if root := t.wild[componentsB(u)]; root != nil {
			_, visited := wbestCount(root, u)
			return visited
		}
	}
	return 0
}

// wbestCount is wbest counting the nodes it visits.
func wbestCount[E comparable](cur *wnode[E], rest []byte) (found bool, visited int) {
	comp, next, last := cutComponentB(rest)
	for _, child := range [2]*wnode[E]{cur.kids[string(comp)], cur.any} {
		if child == nil {
			continue
		}
		visited++
		if last {
			if child.has {
				return true, visited
			}
			continue
		}
		ok, v := wbestCount(child, next)
		visited += v
		if ok {
			return true, visited
		}
	}
	return false, visited
}

func wbest[E comparable](cur *wnode[E], rest []byte) (E, bool) {
	comp, next, last := cutComponentB(rest)
	for _, child := range [2]*wnode[E]{cur.kids[string(comp)], cur.any} {
		if child == nil {
			continue
		}
		if last {
			if child.has {
				return child.entry, true
			}
			continue
		}
		if e, ok := wbest(child, next); ok {
			return e, true
		}
	}
	var zero E
	return zero, false
}

// all appends every entry with its match policy, for the meta API.
func (t *table[E]) all(fn func(m proto.Match, e E)) {
	for _, e := range t.exact {
		fn(proto.MatchExact, e)
	}
	t.ptrie.each(func(e E) { fn(proto.MatchPrefix, e) })
	var walk func(n *wnode[E])
	walk = func(n *wnode[E]) {
		if n.has {
			fn(proto.MatchWildcard, n.entry)
		}
		for _, k := range n.kids {
			walk(k)
		}
		if n.any != nil {
			walk(n.any)
		}
	}
	for _, root := range t.wild {
		walk(root)
	}
}

// patternMatches reports whether the entry (m, p) matches the concrete URI
// u, as matchAll finds it: exact, a string prefix, or a wildcard pattern
// of as many components whose non-empty components are u's.
func patternMatches(m proto.Match, p, u string) bool {
	switch m {
	case proto.MatchPrefix:
		return len(u) >= len(p) && u[:len(p)] == p
	case proto.MatchWildcard:
		for {
			pc, pr, plast := cutComponent(p)
			uc, ur, ulast := cutComponent(u)
			if (pc != "" && pc != uc) || plast != ulast {
				return false
			}
			if plast {
				return true
			}
			p, u = pr, ur
		}
	}
	return p == u
}

// wildcardNodeCost and wildcardKidsCost are what a wildcard pattern's
// index holds per component after its first: a trie node (wnode), and,
// for a component that is not empty, its place in its parent's map of
// children (kids), a map of its own when the parent had none. Measured
// on patterns that share no node (TestSubscriptionCountsWhatItHolds): 64
// components, 19,259 bytes of heap; 64 of which 63 empty, 2,523; half
// empty, 10,764.
const (
	wildcardNodeCost = 32
	wildcardKidsCost = 272
)

// wildcardIndexCost is what the trie of wildcard patterns holds for the
// pattern uri of match policy m besides what a pattern of one component
// holds (0 for exact and prefix URIs, kept whole), for the budgets of
// subscriptions' and registrations' bytes. Counted whole for each
// session's hold of the pattern, as its URI is, though sessions that
// join it and patterns that share its first components share nodes.
// Before, a pattern counted its URI and the overhead alone: one of 64
// one-letter components held 19,259 bytes of heap and counted 513, so
// that one address's quarter of small-board.yaml's 16 MiB of
// subscription_bytes (4 MiB) let its four sessions hold the realm's 4,096
// wildcard patterns, ~79 MB of heap counted 2.1 MB. A pattern of
// walkShareFrom components or more counts twice: its maker's walk keeps
// its nodes in an index of the owner's own (walkShares). Cold path
// (SUBSCRIBE, REGISTER and their ends).
func wildcardIndexCost(m proto.Match, uri string) int64 {
	if m != proto.MatchWildcard {
		return 0
	}
	var n int64
	_, rest, last := cutComponent(uri)
	for !last {
		var comp string
		comp, rest, last = cutComponent(rest)
		n += wildcardNodeCost
		if comp != "" {
			n += wildcardKidsCost
		}
	}
	if components(uri) >= walkShareFrom {
		n *= 2
	}
	return n
}

func components(u string) int {
	n := 1
	for i := 0; i < len(u); i++ {
		if u[i] == '.' {
			n++
		}
	}
	return n
}

func componentsB(u []byte) int {
	n := 1
	for _, c := range u {
		if c == '.' {
			n++
		}
	}
	return n
}

func cutComponent(s string) (comp, rest string, last bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], false
		}
	}
	return s, "", true
}

func cutComponentB(s []byte) (comp, rest []byte, last bool) {
	for i, c := range s {
		if c == '.' {
			return s[:i], s[i+1:], false
		}
	}
	return s, nil, true
}
