package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// mailboxTasks returns the tasks of kind k waiting in sh's mailbox.
func mailboxTasks(sh *Shard, k taskKind) int {
	sh.mbMu.Lock()
	defer sh.mbMu.Unlock()
	n := 0
	for _, t := range sh.mb {
		if t.kind == k {
			n++
		}
	}
	return n
}

// The chunks of a progressive call invocation from another node, and its
// caller's interrupt, go to the shard holding the invocation only. Each
// was posted to every shard of the callee's node (one 104-byte task in
// each mailbox, and one run on each loop, which looked it up and dropped
// it), while the node's backlog of chunks charged it once: on a node of
// 4 loops, 4 tasks a chunk and 4 an interrupt, counted here in the
// mailboxes of the stalled loops.
func TestMeshChunksGoToTheInvocationsShard(t *testing.T) {
	const shards, chunks = 4, 10
	mm, es := newMemMesh(t, 2, shards, nil)
	callee := es[1].joinOn(2, proto.JSON)
	callee.register("com.upload", nil)
	mm.sync()
	caller := es[0].join(proto.JSON)
	req := caller.nextReq()
	caller.callChunk(req, "com.upload", true, 0)
	mm.sync()
	inv := callee.expect(proto.CodeInvocation)
	var gates []chan struct{}
	for i := range shards {
		gates = append(gates, es[1].stallShard(t, i))
	}
	for i := 1; i <= chunks; i++ {
		caller.callChunk(req, "com.upload", true, i)
	}
	mm.drainNode(1)
	posted := 0
	for i := range shards {
		posted += mailboxTasks(es[1].r.Shard(i), tMeshChunk)
	}
	t.Logf("%d chunks: %d tasks posted on a node of %d loops", chunks, posted, shards)
	if posted != chunks {
		t.Errorf("%d chunks made %d tasks on the callee's node, want %d (one a chunk, on the callee's loop)", chunks, posted, chunks)
	}
	if n := mailboxTasks(es[1].r.Shard(2), tMeshChunk); n != chunks {
		t.Errorf("%d chunks wait for the callee's loop, want %d", n, chunks)
	}
	caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
	mm.drainNode(1)
	interrupts := 0
	for i := range shards {
		interrupts += mailboxTasks(es[1].r.Shard(i), tMeshInterrupt)
	}
	if interrupts != 1 {
		t.Errorf("one interrupt made %d tasks on the callee's node, want 1", interrupts)
	}
	for _, g := range gates {
		close(g)
	}
	mm.sync()
	caller.expectError(proto.CodeCall, req, proto.URICanceled)
	for i := 1; i <= chunks; i++ {
		m := callee.expect(proto.CodeInvocation)
		if m.Request != inv.Request || fmt.Sprint(argsOf(m)) != fmt.Sprint([]any{i}) {
			t.Fatalf("callee got %s, want chunk %d of invocation %d", describe(m), i, inv.Request)
		}
	}
	if m := callee.expect(proto.CodeInterrupt); m.Request != inv.Request {
		t.Fatalf("callee got %s, want the INTERRUPT of %d", describe(m), inv.Request)
	}
	if b := es[1].r.ms.chunkBytes.Load(); b != 0 {
		t.Errorf("%d bytes of chunks still counted", b)
	}
	for i, e := range es {
		if p := e.r.MeshPending(); p != 0 {
			t.Fatalf("node %d: MeshPending = %d after the call ended", i, p)
		}
	}
}
