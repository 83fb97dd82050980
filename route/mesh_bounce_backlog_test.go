package route

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// bounceEnvelope is a call envelope sent back undelivered for call id, to
// shard 0, with a payload of n bytes.
func bounceEnvelope(id uint64, n int) []byte {
	w := wbuf(nil)
	w.byte1(envBounce)
	w.uv(id)
	w.uv(0)
	w.uv(0)
	w.uv(0)
	w.str("realm1")
	w.byte1(byte(proto.MatchExact))
	w.str("com.p")
	w.str("com.p")
	w.uv(5)
	w.str("u")
	w.str("r")
	w.payload(&carry{args: proto.Raw{Ser: proto.JSON, B: []byte(`["` + strings.Repeat("x", n) + `"]`)}})
	w.uv(0)
	return w
}

// Calls another node sends back undelivered (bounces) waiting for the
// caller's shard count in its backlog of calls (maxCallBacklog), as
// results from another node do: the envelope, the carry and the task.
// Past the bound a bounce is refused (its envelope dropped,
// CallsBacklog counted) and its call, if still in flight, ends with
// wamp.error.unavailable "the caller's event loop is busy". Before,
// bounces were posted uncharged: 40 MiB of them held for a stalled loop
// counted 0 bytes, and nothing bounded them but the calls' own bounds.
func TestMeshBounceBacklogCounted(t *testing.T) {
	_, es := newMemMesh(t, 1, 1, nil)
	r := es[0].r
	sh := r.Shard(0)
	unblock := stallExec(t, es[0], 0)
	const size, n = 8 << 10, 5000 // 40 MiB of bounces, past maxCallBacklog
	under := int(maxCallBacklog / (int64(len(bounceEnvelope(n, size))) + callOverhead))
	envs := make([][]byte, n)
	h0 := heapLive()
	for i := range envs[:under] {
		envs[i] = bounceEnvelope(uint64(i+1), size)
	}
	for i, env := range envs[:under] {
		r.MeshDeliver(7, env)
		envs[i] = nil // the router's now
	}
	held, counted := heapLive()-h0, sh.callBacklog.Load()
	t.Logf("%d bounces of %d-byte envelopes: %d KiB held, %d KiB counted", under, len(bounceEnvelope(1, size)), held>>10, counted>>10)
	if counted < held*3/4 || counted > held*3/2 {
		t.Fatalf("%d bounces from another node hold %d KiB waiting for the caller's shard, counted %d KiB: want within 3/4 and 3/2 of it", under, held>>10, counted>>10)
	}
	if b := sh.stats.CallsBacklog.Load(); b != 0 {
		t.Fatalf("%d bounces refused below the bound", b)
	}
	for i := range envs[under:] {
		r.MeshDeliver(7, bounceEnvelope(uint64(under+i+1), size))
	}
	runtime.KeepAlive(envs)
	if b := sh.callBacklog.Load(); b > maxCallBacklog+int64(size)+callOverhead+64 {
		t.Fatalf("%d KiB of bounces counted for the stalled shard, past the bound (%d KiB)", b>>10, maxCallBacklog>>10)
	}
	if b := sh.stats.CallsBacklog.Load(); b == 0 {
		t.Fatal("no bounce refused past the bound")
	}
	unblock()
	waitZero(t, "the caller's shard's backlog of calls", sh.callBacklog.Load)
}

// A real call bounced back while its caller's shard is backlogged ends
// with wamp.error.unavailable, not silence.
func TestMeshBounceRefusedEndsCall(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee := es[1].join(proto.JSON)
	callee.register("com.p", nil)
	mm.sync()
	caller := es[0].join(proto.JSON)
	// The callee leaves node 1 unseen by node 0 (the directory held): node
	// 1 sends the call back.
	mm.mu.Lock()
	mm.hold = true
	mm.mu.Unlock()
	callee.goodbye()
	es[1].sync()
	// Node 1 takes the call only once node 0's shard is stalled and its
	// backlog of calls full.
	gate := make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open) // before the mesh's: its dispatcher must end
	mm.nodes[1].q <- func() { <-gate }
	req := caller.call("com.p", nil, nil, nil)
	sh := es[0].r.Shard(0)
	unblock := stallExec(t, es[0], 0)
	for i := range int(maxCallBacklog/(8<<10)) + 1 {
		es[0].r.MeshDeliver(7, bounceEnvelope(uint64(1<<40+i), 8<<10))
	}
	base := sh.stats.CallsBacklog.Load()
	if base == 0 {
		t.Fatal("the backlog is not full")
	}
	open()
	for deadline := time.Now().Add(20 * time.Second); sh.stats.CallsBacklog.Load() == base; {
		if time.Now().After(deadline) {
			t.Fatalf("the real call's bounce was not refused (backlog %d KiB)", sh.callBacklog.Load()>>10)
		}
		time.Sleep(5 * time.Millisecond)
	}
	unblock()
	m := caller.recv()
	if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIUnavailable {
		t.Fatalf("the bounced call: got %s, want ERROR %s", describe(m), proto.URIUnavailable)
	}
	mm.release()
	waitZero(t, "the caller's shard's backlog of calls", sh.callBacklog.Load)
}
