package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A node keeps the same retained events of a topic whatever order the
// other nodes' events reach it in: an unrestricted event published before
// a filtered one (eligible: one session) is the value every other
// subscriber's get_retained gives. A node that received the filtered
// event first dropped the earlier unrestricted one as older than it, and
// held the filtered one alone, where a node that received them in order
// held both.
func TestMeshRetainedOlderUnrestrictedBehindFiltered(t *testing.T) {
	_, envs := newMemMesh(t, 1, 1, nil)
	e := envs[0]
	mk := func(id uint64, at int64, filtered bool) []byte {
		raw, err := proto.EncodeValue(proto.JSON, []any{id})
		if err != nil {
			t.Fatal(err)
		}
		p := &publication{id: id, topic: []byte("com.t"), c: &carry{args: raw}, retained: true, at: at, src: 7, seq: uint32(id)}
		if filtered {
			p.filter = &pubFilter{hasEligible: true}
			p.filter.eligible.add(12345)
		}
		return appendEvent(nil, "realm1", p)
	}
	rm := e.r.Realm("realm1")
	chain := func() string {
		rm.mu.RLock()
		defer rm.mu.RUnlock()
		var ids []uint64
		for re := rm.retained["com.t"]; re != nil; re = re.older {
			ids = append(ids, re.pub.id)
		}
		return fmt.Sprint(ids)
	}
	// 1 unrestricted at 1000, 2 and 4 filtered at 2000 and 4000, 3
	// unrestricted at 3000: in order, a node keeps 4, 3.
	for _, order := range [][]uint64{{1, 2, 3, 4}, {2, 1, 4, 3}, {4, 2, 1, 3}, {4, 3, 2, 1}, {2, 4, 1, 3}} {
		rm.mu.Lock()
		if old := rm.retained["com.t"]; old != nil {
			rm.unretain("com.t", old)
		}
		rm.mu.Unlock()
		for _, id := range order {
			e.r.meshEvent(mk(id, int64(id)*1000, id%2 == 0))
		}
		if got := chain(); got != "[4 3]" {
			t.Errorf("received in the order %v: kept %s, want [4 3]", order, got)
		}
	}
	// Filtered events only, and an unrestricted one before them: each kept.
	rm.mu.Lock()
	rm.unretain("com.t", rm.retained["com.t"])
	rm.mu.Unlock()
	for _, id := range []uint64{4, 2, 1} {
		e.r.meshEvent(mk(id, int64(id)*1000, id%2 == 0))
	}
	if got := chain(); got != "[4 2 1]" {
		t.Errorf("kept %s, want [4 2 1]", got)
	}
	rm.mu.RLock()
	bytes := rm.retainedBytes
	var sum int64
	for re := rm.retained["com.t"]; re != nil; re = re.older {
		sum += re.size
	}
	rm.mu.RUnlock()
	if bytes != sum {
		t.Errorf("retained bytes %d, the chain's %d", bytes, sum)
	}
}

// A chain re-linked for an event that arrived out of order holds its
// events in new entries: a drop that found an entry before (a reload's or
// a revocation's dropRetained, which looks without the lock) still drops
// its event.
func TestMeshRetainedRelinkedChainStillDroppable(t *testing.T) {
	_, envs := newMemMesh(t, 1, 1, nil)
	e := envs[0]
	rm := e.r.Realm("realm1")
	mk := func(id uint64, at int64, filtered bool) []byte {
		raw, _ := proto.EncodeValue(proto.JSON, []any{id})
		p := &publication{id: id, topic: []byte("com.t"), c: &carry{args: raw}, retained: true, at: at, src: 7, seq: uint32(id)}
		if filtered {
			p.filter = &pubFilter{hasEligible: true}
			p.filter.eligible.add(12345)
		}
		return appendEvent(nil, "realm1", p)
	}
	e.r.meshEvent(mk(4, 4000, true))
	e.r.meshEvent(mk(2, 2000, true))
	rm.mu.RLock()
	found := rm.retained["com.t"].older // 2, found by a drop's walk
	rm.mu.RUnlock()
	e.r.meshEvent(mk(1, 1000, false)) // re-links the chain: 4, 2, 1
	rm.mu.Lock()
	ok := rm.unretainOne("com.t", found)
	var ids []uint64
	for re := rm.retained["com.t"]; re != nil; re = re.older {
		ids = append(ids, re.pub.id)
	}
	rm.mu.Unlock()
	if !ok || fmt.Sprint(ids) != "[4 1]" {
		t.Fatalf("drop of event 2 after the re-link: %v, chain %v, want true, [4 1]", ok, ids)
	}
}
