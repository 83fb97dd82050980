package route

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// waitZero waits until v() is 0, and fails naming what with its value.
func waitZero(t *testing.T, what string, v func() int64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); v() != 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if b := v(); b != 0 {
		t.Fatalf("%d bytes still counted in %s after the shard ran", b, what)
	}
}

// Results and errors from another node waiting for the caller's shard
// count in its backlog of calls (maxCallBacklog) what they hold there:
// the envelope, the carry decoded from it (304 bytes, a 320-byte object),
// the error URI and message copied out of it, and the task in the
// shard's mailbox (104 bytes, in a slice grown as it fills), not the
// envelope and 256 bytes.
func TestMeshResultBacklogCountsWhatResultsHold(t *testing.T) {
	for _, tc := range []struct {
		name     string
		flags    uint64
		uri, msg string
	}{
		{"result", 0, "", ""},
		{"error", rsError, "com.example.error.something_went_wrong", strings.Repeat("m", 40)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, es := newMemMesh(t, 1, 1, nil)
			r := es[0].r
			unblock := stallExec(t, es[0], 0)
			sh := r.Shard(0)
			const n = 20000
			envs := make([][]byte, n)
			for i := range envs {
				envs[i] = appendResult(nil, 0, uint64(i+1), tc.flags, 0, tc.uri, tc.msg, &carry{args: proto.Raw{Ser: proto.JSON, B: []byte(`["x"]`)}})
			}
			h0, c0 := heapLive(), sh.callBacklog.Load()
			for i, env := range envs {
				r.MeshDeliver(99, env)
				envs[i] = nil // the router's now: what it holds
			}
			held, counted := heapLive()-h0, sh.callBacklog.Load()-c0
			runtime.KeepAlive(envs)
			t.Logf("%d %ss of %d-byte envelopes: %d KiB held, %d KiB counted (%d and %d bytes each)", n, tc.name, len(appendResult(nil, 0, n, tc.flags, 0, tc.uri, tc.msg, &carry{args: proto.Raw{Ser: proto.JSON, B: []byte(`["x"]`)}})), held>>10, counted>>10, held/n, counted/n)
			if counted < held*3/4 || counted > held*3/2 {
				t.Errorf("%d %ss from another node hold %d KiB waiting for the caller's shard, counted %d KiB: want within 3/4 and 3/2 of it", n, tc.name, held>>10, counted>>10)
			}
			if b := sh.stats.CallsBacklog.Load(); b != 0 {
				t.Fatalf("%d results refused below the bound", b)
			}
			unblock()
			waitZero(t, "the caller's shard's backlog of calls", sh.callBacklog.Load)
		})
	}
}

// Chunks of a progressive call invocation from another node waiting for
// the callee's shard count in the node's backlog of chunks what they hold
// there: the envelope, its carry and its task, not the envelope and 256
// bytes.
func TestMeshChunkBacklogCountsWhatChunksHold(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee := es[1].join(proto.JSON)
	callee.register("com.upload", nil)
	mm.sync()
	caller := es[0].join(proto.JSON)
	req := caller.nextReq()
	caller.callChunk(req, "com.upload", true, 0)
	mm.sync()
	callee.expect(proto.CodeInvocation)
	r := es[1].r
	var key minvKey
	found := 0
	for i := range r.ms.live {
		ls := &r.ms.live[i]
		ls.mu.Lock()
		for k := range ls.m {
			key = k
			found++
		}
		ls.mu.Unlock()
	}
	if found != 1 {
		t.Fatalf("%d invocations from the caller's node in flight, want 1", found)
	}
	callee.peer.slow.Store(true) // what the chunks become once run does not matter here
	unblock := stallExec(t, es[1], 0)

	const n = 4000
	envs := make([][]byte, n)
	for i := range envs {
		envs[i] = appendChunk(nil, key.callID, true, &carry{args: proto.Raw{Ser: proto.JSON, B: []byte(`["x"]`)}})
	}
	h0, c0 := heapLive(), r.ms.chunkBytes.Load()
	for i, env := range envs {
		r.MeshDeliver(key.node, env)
		envs[i] = nil // the router's now: what it holds
	}
	held, counted := heapLive()-h0, r.ms.chunkBytes.Load()-c0
	runtime.KeepAlive(envs)
	t.Logf("%d chunks: %d KiB held, %d KiB counted (%d and %d bytes each)", n, held>>10, counted>>10, held/n, counted/n)
	if counted < held*3/4 || counted > held*3/2 {
		t.Errorf("%d chunks from another node hold %d KiB waiting for the callee's shard, counted %d KiB: want within 3/4 and 3/2 of it", n, held>>10, counted>>10)
	}
	unblock()
	waitZero(t, "the node's backlog of chunks", r.ms.chunkBytes.Load)
}

// callEnvelope is a call envelope of node 1's caller 5 to com.p, with
// call id id, as node 1's router makes them.
func callEnvelope(id uint64) []byte {
	w := wbuf(nil)
	w.byte1(envCall)
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
	w.payload(&carry{args: proto.Raw{Ser: proto.JSON, B: []byte(`["x"]`)}})
	w.uv(0) // no callee excluded
	return w
}

// Calls from another node waiting for the callee's shard count in its
// backlog of calls what they hold there: the envelope, the carry decoded
// from it, the caller's origin (meshOrigin, 96 bytes) and the task, not
// the envelope and 256 bytes.
func TestMeshCallBacklogCountsWhatCallsHold(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee := es[1].join(proto.JSON)
	callee.register("com.p", nil)
	mm.sync()
	callee.peer.slow.Store(true) // what the calls become once run does not matter here
	r := es[1].r
	unblock := stallExec(t, es[1], 0)
	sh := r.Shard(0)
	const n = 4000
	envs := make([][]byte, n)
	for i := range envs {
		envs[i] = callEnvelope(uint64(i + 1))
	}
	h0, c0 := heapLive(), sh.callBacklog.Load()
	for i, env := range envs {
		r.MeshDeliver(1, env)
		envs[i] = nil // the router's now: what it holds
	}
	held, counted := heapLive()-h0, sh.callBacklog.Load()-c0
	runtime.KeepAlive(envs)
	t.Logf("%d calls of %d-byte envelopes: %d KiB held, %d KiB counted (%d and %d bytes each)", n, len(callEnvelope(n)), held>>10, counted>>10, held/n, counted/n)
	if counted < held*3/4 || counted > held*3/2 {
		t.Errorf("%d calls from another node hold %d KiB waiting for the callee's shard, counted %d KiB: want within 3/4 and 3/2 of it", n, held>>10, counted>>10)
	}
	if b := sh.stats.CallsBacklog.Load(); b != 0 {
		t.Fatalf("%d calls refused below the bound", b)
	}
	unblock()
	waitZero(t, "the callee's shard's backlog of calls", sh.callBacklog.Load)
}
