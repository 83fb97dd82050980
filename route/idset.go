package route

import (
	"hash/maphash"

	"github.com/edgewamp/edgewamp/proto"
)

// idSet is a set of session ids: a PUBLISH's exclude and eligible lists
// (pubFilter). Open addressing with linear probing, at most half full, the
// slots holding the ids themselves: 0 marks an empty slot (WAMP ids are 1
// to 2^53, so a 0 in a list, which matches no session, is not kept).
// Building it from a list costs a hash and a probe or two per entry, and
// O(log n) allocations; the hash is keyed per process (strSetSeed), so
// that a peer cannot choose ids that collide.
//
// Before, it was a sorted slice, sorted and compacted again each time the
// list doubled: a PUBLISH with 2,000,000 distinct ids in exclude (10 MB of
// MsgPack) held its event loop 1.1-1.9 s building it, nearly all of it
// sorting, every other session of the loop waiting.
//
// The zero value is an empty set. Not safe for concurrent writes; once
// built it is only read (a publication's copies on other shards share it).
type idSet struct {
	slots []uint64
	n     int
}

func idHash(id uint64) uint64 { return maphash.Comparable(strSetSeed, id) }

func (set *idSet) len() int { return set.n }

// add adds id, unless the set holds it already or it is 0. It returns the
// slots it probed or filled, growing the table included (filterOf's work,
// for tests).
func (set *idSet) add(id uint64) (steps int) {
	if id == 0 {
		return 0
	}
	if 2*(set.n+1) > len(set.slots) {
		steps = set.grow()
	}
	mask := uint64(len(set.slots) - 1)
	for i := idHash(id) & mask; ; i = (i + 1) & mask {
		steps++
		switch set.slots[i] {
		case 0:
			set.slots[i] = id
			set.n++
			return steps
		case id:
			return steps // no copy of a repeated id
		}
	}
}

// grow doubles the table (16 slots at first) and places the ids anew. It
// returns the slots it probed.
func (set *idSet) grow() (steps int) {
	n := max(16, 2*len(set.slots))
	slots := make([]uint64, n)
	mask := uint64(n - 1)
	for _, id := range set.slots {
		if id == 0 {
			continue
		}
		i := idHash(id) & mask
		for steps++; slots[i] != 0; steps++ {
			i = (i + 1) & mask
		}
		slots[i] = id
	}
	set.slots = slots
	return steps
}

func (set *idSet) has(id uint64) bool {
	if set.n == 0 || id == 0 {
		return false
	}
	mask := uint64(len(set.slots) - 1)
	for i := idHash(id) & mask; ; i = (i + 1) & mask {
		switch set.slots[i] {
		case id:
			return true
		case 0:
			return false
		}
	}
}

// each calls fn with each id, in no particular order.
func (set *idSet) each(fn func(id uint64)) {
	for _, id := range set.slots {
		if id != 0 {
			fn(id)
		}
	}
}

// size is the bytes the set holds.
func (set *idSet) size() int64 { return int64(8 * cap(set.slots)) }

// idSetOf collects the ids of list k into an idSet, and returns the work
// it took (idSet.add's steps).
func idSetOf(f *proto.Fields, k proto.Key) (set idSet, steps int) {
	f.EachID(k, func(id uint64) { steps += set.add(id) })
	return set, steps
}
