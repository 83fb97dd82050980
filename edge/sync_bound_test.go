package edge

import (
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// syncPartMsg is a part of a directory sync answer as a node sends it
// (sendDirectory): boot, version, count and entries, index, whether more
// follow, mesh version.
func syncPartMsg(boot, ver uint64, cnt uint64, entries []route.MeshRealmReg, part uint64, more bool) []byte {
	var w wr
	w.fixed64(boot)
	w.uv(ver)
	w.uv(cnt)
	for _, e := range entries {
		w.entry(e)
	}
	w.uv(part)
	if more {
		w = append(w, 1)
	} else {
		w = append(w, 0)
	}
	w.uv(meshVersion)
	return w
}

// A peer's directory sync answer is held part by part until its last
// part comes. A misbehaving node (or anything that reaches the mesh's
// NATS) sending parts that say more follow, without end, made this node
// hold every one of them: nothing bounded them (max_inbound counts a
// message only until the dispatcher has read it). And a part whose count
// of entries said as many as its bytes (each entry takes at least 7)
// made the node allocate 72 bytes of slice per byte received (a 1 MiB
// part, 72 MiB) before finding that the entries were not there. A sync
// answer is now bounded by what a node can send (1.25 × max_outbound:
// the queue its parts go through), and a count that its bytes cannot
// hold is refused before anything is allocated; both are counted
// (bad_frame) and the peer asked again.
func TestDirectorySyncFromPeerBounded(t *testing.T) {
	a := startNode(t, "a", func(o *Options) { o.MaxOutbound, o.Leaf.Listen = 1<<20, edgetest.FreeAddr(t) })
	nc, err := clientPort(a.n)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const peer = "x"
	// Parts of 64 KiB, 4 MiB in all: more than the 1.25 MiB a node with
	// this max_outbound can send.
	uri := "com.example." + strings.Repeat("u", 1000)
	entries := make([]route.MeshRealmReg, 64)
	for i := range entries {
		entries[i] = route.MeshRealmReg{Realm: "realm1", MeshReg: route.MeshReg{Match: proto.MatchExact, URI: uri, Invoke: proto.InvokeSingle, Callees: 1, First: 1, Last: 1}}
	}
	for part := uint64(0); part < 64; part++ {
		if err := nc.PublishMsg(&nats.Msg{Subject: nodeSubject("a", "S"), Reply: nodeInbox(peer), Data: syncPartMsg(7, 1, uint64(len(entries)), entries, part, true)}); err != nil {
			t.Fatal(err)
		}
		if part%8 == 7 {
			nc.Flush() // within the inbound budget
			time.Sleep(5 * time.Millisecond)
		}
	}
	// What the node holds of it, read on its dispatcher once it has
	// taken everything sent before a marker.
	var held atomic.Int64
	drain := controlDrain(t, a, nc, func() {
		n := 0
		if p := a.n.peers.byName[peer]; p != nil {
			for _, e := range p.parts {
				n += len(e.URI) + len(e.Realm)
			}
		}
		held.Store(int64(n))
	})
	drain()
	if h := held.Load(); h > 5<<20/4 {
		t.Errorf("the node holds %d KiB of a peer's unfinished directory sync (more than the 1,280 KiB a node with max_outbound 1 MiB can send)", h>>10)
	}
	// A part whose count its bytes cannot hold.
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	bad0 := a.n.stats.BadFrames.Load()
	pad := make([]byte, 1<<20)
	for range 4 {
		var w wr
		w.fixed64(9)
		w.uv(1)
		w.uv(uint64(len(pad)))
		w = append(w, pad...)
		nc.PublishMsg(&nats.Msg{Subject: nodeSubject("a", "S"), Reply: nodeInbox("y"), Data: w})
		nc.Flush()
	}
	drain()
	runtime.ReadMemStats(&ms)
	if d := ms.TotalAlloc - before; d > 64<<20 {
		t.Errorf("4 malformed sync answers of 1 MiB made the node allocate %d MiB", d>>20)
	}
	// The oversized sync (once) and the 4 malformed parts are counted.
	if d := a.n.stats.BadFrames.Load() - bad0; d != 4 {
		t.Errorf("bad_frame counted %d malformed sync answers, want 4", d)
	}
}
