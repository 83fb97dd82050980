package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A chain re-linked for another node's event that arrives out of order
// (retainNewer) keeps this node's own events in their publishers'
// shares: the re-link dropped the chain (unretain, which takes each
// event out of its share) before reading each event's share to retain
// it again, so a local publisher's event stayed retained counted in no
// share, and its publisher could retain another past
// max_retained_per_publisher.
func TestMeshRetainedRelinkKeepsLocalShare(t *testing.T) {
	_, envs := newMemMesh(t, 1, 1, func(c *Config) { c.MaxRetainedPerPublisher = 1 })
	e := envs[0]
	rm := e.r.Realm("realm1")
	x := e.joinFrom("192.0.2.7:40001")
	// X's filtered retained event on com.t: its share's one event.
	x.publish("com.t", map[string]any{"retain": true, "acknowledge": true, "exclude_authid": []any{"nobody"}}, []any{"x"}, nil)
	x.expect(proto.CodePublished)
	e.sync()
	const owner = "address 192.0.2.7"
	share := func() int {
		rm.mu.RLock()
		defer rm.mu.RUnlock()
		if sh := rm.retainedBy[owner]; sh != nil {
			return sh.events
		}
		return 0
	}
	if n := share(); n != 1 {
		t.Fatalf("X's share before: %d events, want 1", n)
	}
	rm.mu.RLock()
	at := rm.retained["com.t"].pub.at
	rm.mu.RUnlock()
	// Another node's unrestricted event, published before X's, arrives
	// now: it belongs behind X's in the chain (re-linked).
	raw, _ := proto.EncodeValue(proto.JSON, []any{"remote"})
	p := &publication{id: 99, topic: []byte("com.t"), c: &carry{args: raw}, retained: true, at: at - 1, src: 7, seq: 1}
	e.r.meshEvent(appendEvent(nil, "realm1", p))
	var ids []uint64
	rm.mu.RLock()
	for re := rm.retained["com.t"]; re != nil; re = re.older {
		ids = append(ids, re.pub.id)
	}
	rm.mu.RUnlock()
	if len(ids) != 2 || ids[1] != 99 {
		t.Fatalf("chain %v, want X's event and 99", ids)
	}
	checkShares(t, rm, "after the re-link")
	if n := share(); n != 1 {
		t.Errorf("X's share after the re-link: %d events, want 1", n)
	}
	// X is at its share: another topic's retained event is refused.
	x.retainAck("com.u", "x")
	e.sync()
	rm.mu.RLock()
	_, kept := rm.retained["com.u"]
	rm.mu.RUnlock()
	if kept {
		t.Errorf("X retained com.u past its share of 1")
	}
}

// A re-link whose replay a bound refuses (the realm's bytes, with the
// out-of-order event in the chain) drops the topic's events as a refusal
// does; this node's own events among them were dropped without a word to
// the other nodes, which kept handing out their copies (that no reload
// here could drop any more: nothing here recorded them), and the event
// that arrived was reported kept. The other nodes are now asked to drop
// those copies, as when a local PUBLISH is refused, and the refusal is
// counted.
func TestMeshRetainedRelinkRefusalDropsCopies(t *testing.T) {
	mm, envs := newMemMesh(t, 2, 1, nil)
	a, b := envs[0], envs[1]
	rmA, rmB := a.r.Realm("realm1"), b.r.Realm("realm1")
	sub := b.join(proto.JSON) // B's interest in com.t brings it L's copy
	sub.subscribe("com.t", nil)
	mm.sync()
	x := a.joinFrom("192.0.2.7:40001")
	// L: a filtered retained event, larger than the remote ones.
	x.publish("com.t", map[string]any{"retain": true, "acknowledge": true, "exclude_authid": []any{"nobody"}}, []any{strings.Repeat("l", 2048)}, nil)
	lid := x.expect(proto.CodePublished).ID
	mm.sync()
	has := func(rm *Realm, id uint64) bool {
		rm.mu.RLock()
		defer rm.mu.RUnlock()
		for re := rm.retained["com.t"]; re != nil; re = re.older {
			if re.pub.id == id {
				return true
			}
		}
		return false
	}
	if !has(rmB, lid) {
		t.Fatal("node B has no copy of L")
	}
	rmA.mu.RLock()
	at := rmA.retained["com.t"].pub.at
	rmA.mu.RUnlock()
	remote := func(id uint64, at int64, filtered bool) []byte {
		raw, _ := proto.EncodeValue(proto.JSON, []any{id})
		p := &publication{id: id, topic: []byte("com.t"), c: &carry{args: raw}, retained: true, at: at, src: 77, seq: uint32(id)}
		if filtered {
			p.filter = &pubFilter{hasEligible: true}
			p.filter.eligible.add(12345)
		}
		return appendEvent(nil, "realm1", p)
	}
	a.r.meshEvent(remote(90, at-2, false)) // U, older than L: chain [L U]
	rmA.mu.Lock()
	rmA.r.cfg.MaxRetainedBytes = rmA.retainedBytes + 1 // room for U and L, not one more
	rmA.mu.Unlock()
	refused := a.r.Shard(0).stats.RetainRefused.Load()
	a.r.meshEvent(remote(91, at-1, true)) // P, between them: re-linked U P L, L refused
	mm.sync()
	if has(rmA, lid) {
		t.Skip("L still kept on A: the bound did not refuse the replay")
	}
	if n := a.r.Shard(0).stats.RetainRefused.Load() - refused; n == 0 {
		t.Errorf("the re-link's refusal was not counted")
	}
	if has(rmB, lid) {
		t.Errorf("node A dropped its own retained event L in a re-link's refusal; node B still hands out its copy")
	}
}
