package route

import (
	"hash/maphash"
	"math"
)

// strSet is a set of strings: a PUBLISH's authid and authrole black and
// white lists (pubFilter). The distinct entries' bytes are kept one after
// the other in one array (arena), found through an open-addressing table
// of their indexes (slots, linear probing, at most half full), so that
// building the set from a list costs a hash and a copy per entry and
// O(log n) allocations.
//
// Before, it was a map[string]struct{}: each distinct entry a string of
// its own and a map slot, about 56 bytes of heap, and a PUBLISH of
// 1.5 million distinct 6-byte authids (11 MB, within max_message) held
// its event loop for 1-3 s building the set (one allocation per entry,
// the map's growth), every other session of the loop waiting, at every
// such PUBLISH.
//
// The zero value is an empty set. Not safe for concurrent writes; once
// built it is only read (a publication's copies on other shards share it).
type strSet struct {
	arena []byte
	ends  []uint32 // entry i is arena[ends[i-1]:ends[i]] (from 0 for i == 0)
	// slots: 0 empty; else an entry's index + 1, and above it the top 32
	// bits of its hash (most probes that meet another entry then skip it
	// without comparing bytes)
	slots []uint64
}

// strSetSeed keys the sets' hashes: random per process, so that a peer
// cannot choose entries that collide.
var strSetSeed = maphash.MakeSeed()

func (set *strSet) len() int { return len(set.ends) }

func (set *strSet) entry(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = set.ends[i-1]
	}
	return set.arena[start:set.ends[i]]
}

// add adds b (copied), unless the set holds it already.
func (set *strSet) add(b []byte) {
	if uint64(len(set.arena))+uint64(len(b)) > math.MaxUint32 || uint64(len(set.ends)) >= math.MaxUint32/2 {
		return // beyond any message the router takes (max_message)
	}
	if 2*(len(set.ends)+1) > len(set.slots) {
		set.grow()
	}
	h := maphash.Bytes(strSetSeed, b)
	tag := h >> 32
	mask := uint64(len(set.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		e := set.slots[i]
		if e == 0 {
			set.arena = append(set.arena, b...)
			set.ends = append(set.ends, uint32(len(set.arena)))
			set.slots[i] = tag<<32 | uint64(len(set.ends))
			return
		}
		if e>>32 == tag && string(set.entry(int(uint32(e)-1))) == string(b) {
			return // no copy of a repeated entry
		}
	}
}

// grow doubles the table (16 slots at first) and places the entries anew.
func (set *strSet) grow() {
	n := max(16, 2*len(set.slots))
	slots := make([]uint64, n)
	mask := uint64(n - 1)
	for _, e := range set.slots {
		if e == 0 {
			continue
		}
		h := maphash.Bytes(strSetSeed, set.entry(int(uint32(e)-1)))
		i := h & mask
		for slots[i] != 0 {
			i = (i + 1) & mask
		}
		slots[i] = e
	}
	set.slots = slots
}

func (set *strSet) has(s string) bool {
	if len(set.ends) == 0 {
		return false
	}
	h := maphash.String(strSetSeed, s)
	tag := h >> 32
	mask := uint64(len(set.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		e := set.slots[i]
		if e == 0 {
			return false
		}
		if e>>32 == tag && string(set.entry(int(uint32(e)-1))) == s {
			return true
		}
	}
}

// each calls fn with each entry, in the order they were added; b is the
// set's own bytes, valid while the set is.
func (set *strSet) each(fn func(b []byte)) {
	for k := range set.ends {
		fn(set.entry(k))
	}
}

// size is the bytes the set holds.
func (set *strSet) size() int64 {
	return int64(cap(set.arena) + 4*cap(set.ends) + 8*cap(set.slots))
}

func strSetOf(l []string) strSet {
	var set strSet
	for _, s := range l {
		set.add([]byte(s))
	}
	return set
}
