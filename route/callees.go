package route

import "iter"

// calleeList is a shared registration's callees on this node, in REGISTER
// order (first and last, roundrobin's rotation, the reroute scans rely on
// it).
//
// Every CALL reads the list without a lock, on any shard, so a list is
// never changed where a reader may look once it is published: a change
// makes a new list, swapped in under Realm.mu. It was a flat slice, copied
// whole by every REGISTER, UNREGISTER and leave: 502 KB and 0.4-0.6 ms of
// the loop per REGISTER/UNREGISTER pair on a registration of 10,000
// callees, 1,184 MB for those 10,000 leaving one by one. Here the newest
// callees are in tail, appended to in place (past every published list's
// length, which no reader reads), the older ones in chunks of at most
// calleesPerChunk: a REGISTER costs O(1) amortized; a removal finds its
// callee by binary search on seq and copies one chunk and the list of
// chunks, O(calleesPerChunk + n/calleesPerChunk). A CALL's pick stays an
// index into tail while the registration has at most calleesPerChunk
// callees (at, inlined), else a look at the chunk the index would be in
// were the chunks full (a binary search when removals thinned them).
type calleeList struct {
	full []calleeChunk // none empty, each at most calleesPerChunk
	tail []callee      // the newest callees, at most calleesPerChunk
	base int           // the callees in full
	// prog is how many of the callees announced
	// progressive_call_invocations: what the node tells the mesh
	// (meshLocalChanged), so that the other nodes send such calls to a
	// node with a callee that takes them (meshPickProgressive); pt how
	// many announced payload_passthru_mode too (such a call in payload
	// passthru mode). pm is how many announced payload_passthru_mode,
	// whatever else (a call in the mode that is not a progressive call
	// invocation: calleeNeed).
	prog, pt, pm int
}

// calleesPerChunk is the most callees of a chunk of a calleeList (32 bytes
// each).
const calleesPerChunk = 256

// calleeChunk is a chunk of a calleeList, end the callees up to its last
// in the list's full chunks, prog how many of its callees announced
// progressive_call_invocations (progFirst and progLast skip the chunks
// with none), pt how many of them payload_passthru_mode too, pm how many
// announced payload_passthru_mode (nthCan skips the chunks with none of
// those a call needs).
type calleeChunk struct {
	c            []callee
	end          int
	prog, pt, pm int32 // at most calleesPerChunk: a chunk stays 48 bytes
}

// noCallees is the list of a registration without a local callee.
var noCallees = &calleeList{}

func (l *calleeList) len() int { return l.base + len(l.tail) }

// at returns the i-th callee (0 ≤ i < len). Inlined: a registration of
// at most calleesPerChunk callees has them all in tail.
func (l *calleeList) at(i int) callee {
	if i >= l.base {
		return l.tail[i-l.base]
	}
	return *l.inFull(i)
}

// inFull returns the i-th callee, one of full's (i < base). Not inlined,
// so that at is.
//
//go:noinline
func (l *calleeList) inFull(i int) *callee {
	// The first chunk whose end > i. A chunk holds at most
	// calleesPerChunk, so it is not one before i/calleesPerChunk, and is
	// that one while no removal has thinned the chunks before it.
	lo, hi := i/calleesPerChunk, len(l.full)-1
	if l.full[lo].end > i {
		hi = lo
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if l.full[m].end > i {
			hi = m
		} else {
			lo = m + 1
		}
	}
	ch := &l.full[lo]
	return &ch.c[i-(ch.end-len(ch.c))]
}

// all yields the callees in order.
func (l *calleeList) all() iter.Seq[callee] {
	return func(yield func(callee) bool) {
		for _, ch := range l.full {
			for _, c := range ch.c {
				if !yield(c) {
					return
				}
			}
		}
		for _, c := range l.tail {
			if !yield(c) {
				return
			}
		}
	}
}

// has reports whether ss is a callee of the list (a walk: for the meta
// API; the dealer asks the session's own table).
func (l *calleeList) has(ss *Session) bool {
	for c := range l.all() {
		if c.s == ss {
			return true
		}
	}
	return false
}

// with returns the list with c added last; c.seq must be greater than
// every seq of l. Its tail is l's, appended to in place when it has room:
// the readers of l, and of every list before it, read only the part of
// the array their own length covers, and no list but the newest is ever
// appended to (a removal leaves a tail without room, or a new array).
func (l *calleeList) with(c callee) *calleeList {
	n := &calleeList{full: l.full, tail: l.tail, base: l.base, prog: l.prog + c.has(needProg), pt: l.pt + c.has(needProg|needPPT), pm: l.pm + c.has(needPPT)}
	if len(n.tail) == calleesPerChunk {
		// The tail becomes the last full chunk, appended in place as
		// the tail is: full is replaced by a new array when a removal
		// changes it.
		n.full = append(n.full, calleeChunk{c: n.tail[:calleesPerChunk:calleesPerChunk], end: n.base + calleesPerChunk, prog: countOf(n.tail, needProg), pt: countOf(n.tail, needProg|needPPT), pm: countOf(n.tail, needPPT)})
		n.base += calleesPerChunk
		n.tail = nil
	}
	n.tail = append(n.tail, c)
	return n
}

// without returns the list with the callee seq removed; l itself when it
// has none such.
func (l *calleeList) without(seq uint64) *calleeList {
	if t := l.tail; len(t) > 0 && seq >= t[0].seq {
		k, ok := findSeq(t, seq)
		if !ok {
			return l
		}
		n := &calleeList{full: l.full, base: l.base, prog: l.prog - t[k].has(needProg), pt: l.pt - t[k].has(needProg|needPPT), pm: l.pm - t[k].has(needPPT)}
		if k == len(t)-1 {
			// No room left: the next REGISTER's append makes a new
			// array, so that callee k stays as the older lists see it.
			n.tail = t[:k:k]
		} else {
			n.tail = append(append(make([]callee, 0, len(t)-1), t[:k]...), t[k+1:]...)
		}
		return n
	}
	lo, hi := 0, len(l.full) // the first chunk whose last seq ≥ seq
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c := l.full[m].c; c[len(c)-1].seq >= seq {
			hi = m
		} else {
			lo = m + 1
		}
	}
	if lo == len(l.full) {
		return l
	}
	k, ok := findSeq(l.full[lo].c, seq)
	if !ok {
		return l
	}
	// A new array of chunks (never the old one resliced: with appends
	// to it in place), the chunk without k (a new array, no room).
	full := make([]calleeChunk, 0, len(l.full))
	full = append(full, l.full[:lo]...)
	if c := l.full[lo].c; len(c) > 1 {
		nc := append(append(make([]callee, 0, len(c)-1), c[:k]...), c[k+1:]...)
		full = append(full, calleeChunk{c: nc, end: l.full[lo].end - 1, prog: l.full[lo].prog - int32(c[k].has(needProg)), pt: l.full[lo].pt - int32(c[k].has(needProg|needPPT)), pm: l.full[lo].pm - int32(c[k].has(needPPT))})
	}
	for _, ch := range l.full[lo+1:] {
		full = append(full, calleeChunk{c: ch.c, end: ch.end - 1, prog: ch.prog, pt: ch.pt, pm: ch.pm})
	}
	gone := l.full[lo].c[k]
	n := &calleeList{full: full, tail: l.tail, base: l.base - 1, prog: l.prog - gone.has(needProg), pt: l.pt - gone.has(needProg|needPPT), pm: l.pm - gone.has(needPPT)}
	if len(full) > 2*((n.base+calleesPerChunk-1)/calleesPerChunk) {
		n.full = compact(full, n.base)
	}
	return n
}

// compact returns the callees of full (base of them) in full chunks: when
// removals left more than twice the chunks they need, so that the list of
// chunks, copied by every removal, stays short. It copies them all, once
// per a third as many removals at least.
func compact(full []calleeChunk, base int) []calleeChunk {
	out := make([]calleeChunk, 0, (base+calleesPerChunk-1)/calleesPerChunk)
	var cur []callee
	for _, ch := range full {
		for _, c := range ch.c {
			if cur == nil {
				cur = make([]callee, 0, calleesPerChunk)
			}
			cur = append(cur, c)
			if len(cur) == calleesPerChunk {
				out = append(out, calleeChunk{c: cur, end: len(out)*calleesPerChunk + calleesPerChunk, prog: countOf(cur, needProg), pt: countOf(cur, needProg|needPPT), pm: countOf(cur, needPPT)})
				cur = nil
			}
		}
	}
	if len(cur) > 0 {
		out = append(out, calleeChunk{c: cur[:len(cur):len(cur)], end: base, prog: countOf(cur, needProg), pt: countOf(cur, needProg|needPPT), pm: countOf(cur, needPPT)})
	}
	return out
}

// has is 1 for a callee that meets need (needProg: it announced
// progressive_call_invocations; needPPT: payload_passthru_mode; both:
// both), else 0, as the lists count them. A session's features are set at
// its HELLO and never change.
func (c callee) has(need calleeNeed) int {
	if c.s != nil && c.meets(need) {
		return 1
	}
	return 0
}

// countOf returns how many of cs meet need.
func countOf(cs []callee, need calleeNeed) int32 {
	var n int32
	for _, c := range cs {
		n += int32(c.has(need))
	}
	return n
}

// calleeNeed is what a call needs of its callee: a progressive call
// invocation, progressive_call_invocations (needProg); a call in payload
// passthru mode, payload_passthru_mode (needPPT). 0: nothing.
type calleeNeed uint8

const (
	needProg calleeNeed = 1 << iota
	needPPT
)

// needOf returns what a call with progressive invocations (progress) or
// in payload passthru mode (ppt) needs of its callee.
func needOf(progress, ppt bool) calleeNeed {
	var n calleeNeed
	if progress {
		n |= needProg
	}
	if ppt {
		n |= needPPT
	}
	return n
}

// meets reports whether c announced what a call needing need needs.
func (c callee) meets(need calleeNeed) bool {
	f := c.s.feat
	return (need&needProg == 0 || f&fCalleeProgInv != 0) && (need&needPPT == 0 || f&fCalleePPT != 0)
}

// count returns how many of the list's callees meet need (need != 0),
// from the counts kept: O(1).
func (l *calleeList) count(need calleeNeed) int {
	switch need {
	case needProg:
		return l.prog
	case needPPT:
		return l.pm
	}
	return l.pt
}

// count is the list's count for a chunk.
func (ch *calleeChunk) count(need calleeNeed) int {
	switch need {
	case needProg:
		return int(ch.prog)
	case needPPT:
		return int(ch.pm)
	}
	return int(ch.pt)
}

// nthCan returns the k-th callee, in REGISTER order, of those of l that
// meet need (0 ≤ k < l.count(need)). It looks only into the chunks that
// have one (the chunks' counts) and the tail: O(chunks +
// calleesPerChunk), whatever the callees that do not meet it.
func (l *calleeList) nthCan(k int, need calleeNeed) (callee, bool) {
	for i := range l.full {
		ch := &l.full[i]
		m := ch.count(need)
		if k >= m {
			k -= m
			continue
		}
		for _, c := range ch.c {
			if c.meets(need) {
				if k == 0 {
					return c, true
				}
				k--
			}
		}
		return callee{}, false // the counts are wrong: not reached
	}
	for _, c := range l.tail {
		if c.meets(need) {
			if k == 0 {
				return c, true
			}
			k--
		}
	}
	return callee{}, false
}

// needList is the callees of a list that meet a need, by index in
// REGISTER order: all of them for no need (or when every one meets it),
// else nthCan's, O(chunks + calleesPerChunk) an index. A call's reroute
// picks among them (pickUntried).
type needList struct {
	l    *calleeList
	need calleeNeed
	n    int  // how many meet it
	all  bool // every callee of l meets it: at is l.at
}

// needListOf returns l's callees that meet need.
func needListOf(l *calleeList, need calleeNeed) needList {
	if need == 0 {
		return needList{l: l, n: l.len(), all: true}
	}
	m := l.count(need)
	return needList{l: l, need: need, n: m, all: m == l.len()}
}

// at returns the k-th of them (0 ≤ k < n).
func (nl needList) at(k int) callee {
	if nl.all {
		return nl.l.at(k)
	}
	c, _ := nl.l.nthCan(k, nl.need)
	return c
}

// can returns what the list counts of its callees that take a
// progressive call invocation, in payload passthru mode when ppt.
func (l *calleeList) can(ppt bool) int {
	if ppt {
		return l.pt
	}
	return l.prog
}

// progSpan returns the REGISTER times of the first and the last callee
// that announced progressive_call_invocations; 0, 0 when none did. O(1)
// when every callee announced it (clients that announce it for one
// registration do for all), else canFirst and canLast.
func (l *calleeList) progSpan() (first, last int64) { return l.canSpan(false) }

// canSpan is progSpan for the callees that also announced
// payload_passthru_mode when ppt.
func (l *calleeList) canSpan(ppt bool) (first, last int64) {
	n := l.len()
	switch l.can(ppt) {
	case 0:
		return 0, 0
	case n:
		return l.at(0).at, l.at(n - 1).at
	}
	return l.canFirst(ppt), l.canLast(ppt)
}

// can is ch's count of callees that take a progressive call invocation
// (in payload passthru mode when ppt), and whether c is one.
func (ch *calleeChunk) can(ppt bool) int {
	if ppt {
		return int(ch.pt)
	}
	return int(ch.prog)
}

func (c callee) can(ppt bool) bool {
	if ppt {
		return c.has(needProg|needPPT) == 1
	}
	return c.has(needProg) == 1
}

// canFirst returns the REGISTER time of the first callee that announced
// progressive_call_invocations (and payload_passthru_mode when ppt; 0:
// none). It looks only into the chunks that have one (calleeChunk.prog,
// .pt) and the tail: O(chunks + calleesPerChunk). Before, a walk from the
// first callee, and canLast's from the last: with one capable callee
// first and 32,768 that are not after it, every REGISTER and UNREGISTER
// walked them all under the realm's lock
// (TestCalleeListProgSpanSkipsChunksWithout).
func (l *calleeList) canFirst(ppt bool) int64 {
	if l.can(ppt) == 0 {
		return 0
	}
	for i := range l.full {
		ch := &l.full[i]
		if ch.can(ppt) == 0 {
			continue
		}
		for _, c := range ch.c {
			if c.can(ppt) {
				return c.at
			}
		}
	}
	for _, c := range l.tail {
		if c.can(ppt) {
			return c.at
		}
	}
	return 0
}

// canLast returns the REGISTER time of the last such callee (0: none), as
// canFirst looks.
func (l *calleeList) canLast(ppt bool) int64 {
	if l.can(ppt) == 0 {
		return 0
	}
	for i := len(l.tail) - 1; i >= 0; i-- {
		if c := l.tail[i]; c.can(ppt) {
			return c.at
		}
	}
	for j := len(l.full) - 1; j >= 0; j-- {
		ch := &l.full[j]
		if ch.can(ppt) == 0 {
			continue
		}
		for i := len(ch.c) - 1; i >= 0; i-- {
			if c := ch.c[i]; c.can(ppt) {
				return c.at
			}
		}
	}
	return 0
}

// findSeq returns the index of the callee seq in l (ascending seqs).
func findSeq(l []callee, seq uint64) (int, bool) {
	lo, hi := 0, len(l)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if l[m].seq < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(l) && l[lo].seq == seq
}
