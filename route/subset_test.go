package route

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// subSet holds each shard's subscribers in chunks, and a change copies
// the chunk list and one or two chunks. Random adds and removes against a
// plain set: the members, the count, no empty or overfull chunk, and every
// earlier set unchanged (readers walk them without a lock).
func TestSubSetChunks(t *testing.T) {
	shards := []*Shard{{idx: 0}, {idx: 1}}
	var all []*Session
	for i := 0; i < 2000; i++ {
		all = append(all, &Session{id: uint64(i + 1), shard: shards[i%2]})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var set *subSet
	in := map[*Session]bool{}
	at := map[*Session]subPos{} // each member's place, as its session's table keeps it
	type snap struct {
		set     *subSet
		members map[*Session]bool
	}
	var snaps []snap
	var latest *subSet
	check := func(set *subSet, want map[*Session]bool) {
		t.Helper()
		got := map[*Session]bool{}
		n := 0
		for i, cs := range set.byShard {
			for _, c := range cs {
				if len(c) == 0 || len(c) > subChunk {
					t.Fatalf("shard %d: a chunk of %d", i, len(c))
				}
				for _, x := range c {
					if got[x] || x.shard.idx != i {
						t.Fatalf("session %d twice or on the wrong shard", x.id)
					}
					got[x] = true
					n++
				}
			}
		}
		if n != len(want) || set.n != len(want) {
			t.Fatalf("%d members, n %d, want %d", n, set.n, len(want))
		}
		if set != latest {
			return // the places are the latest set's
		}
		for x := range want {
			p := at[x]
			if c := set.byShard[x.shard.idx]; int(p.j) >= len(c) || int(p.k) >= len(c[p.j]) || c[p.j][p.k] != x {
				t.Fatalf("session %d not at its place %v", x.id, p)
			}
		}
		for x := range want {
			if !got[x] || !set.has(x) {
				t.Fatalf("session %d missing", x.id)
			}
		}
	}
	for step := 0; step < 20000; step++ {
		x := all[rng.IntN(len(all))]
		if in[x] {
			var moved *Session
			var place subPos
			given := at[x]
			if step%7 == 0 {
				given = subPos{} // a stale place: walked for, and the place found is the one moved takes
			}
			set, moved, place = set.without(x, given)
			if place != at[x] {
				t.Fatalf("session %d removed at %v, its place %v", x.id, place, at[x])
			}
			if moved != nil {
				at[moved] = place
			}
			delete(in, x)
			delete(at, x)
		} else {
			set, at[x] = set.with(x, 2)
			in[x] = true
		}
		latest = set
		if step%1000 == 0 {
			m := map[*Session]bool{}
			for k := range in {
				m[k] = true
			}
			snaps = append(snaps, snap{set, m})
		}
	}
	check(set, in)
	for _, s := range snaps {
		check(s.set, s.members)
	}
	// Removing everyone leaves no chunk; a stale place is walked for.
	for x := range in {
		var moved *Session
		var place subPos
		set, moved, place = set.without(x, at[x])
		if moved != nil {
			at[moved] = place
		}
	}
	if s, _, _ := set.without(all[0], subPos{}); s != set {
		t.Fatal("removing a session not in the set made a new set")
	}
	if set.n != 0 || len(set.byShard[0])+len(set.byShard[1]) != 0 {
		t.Fatalf("empty set: n %d, chunks %d/%d", set.n, len(set.byShard[0]), len(set.byShard[1]))
	}
}

// A subscribe and an unsubscribe on a topic with 20,000 subscribers on one
// shard copy a few chunks, not the subscriber list.
func TestSubSetChangeCopiesLittle(t *testing.T) {
	sh := &Shard{idx: 0}
	var set *subSet
	for i := 0; i < 20000; i++ {
		set, _ = set.with(&Session{id: uint64(i + 1), shard: sh}, 1)
	}
	x := &Session{id: 1 << 30, shard: sh}
	const rounds = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < rounds; i++ {
		s, at := set.with(x, 1)
		s.without(x, at)
	}
	runtime.ReadMemStats(&after)
	bytes := (after.TotalAlloc - before.TotalAlloc) / rounds
	if bytes > 16<<10 {
		t.Fatalf("a subscribe and an unsubscribe at 20,000 subscribers allocate %d bytes, want a few chunks' worth", bytes)
	}
	t.Logf("%d bytes per subscribe and unsubscribe", bytes)
}
