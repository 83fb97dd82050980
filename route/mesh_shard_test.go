package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A result or a bounced call names the caller's shard, a uvarint another
// node wrote. One past the largest int (2^63 and more) became a negative
// int, which passed the check against the number of shards: indexing the
// shards with it panicked on the goroutine that hands the mesh's
// envelopes to the router, and the process died. Such an envelope is
// malformed: counted and dropped.
func TestMeshEnvelopeShardOutOfIntRange(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	r := es[0].r
	es[0].join(proto.JSON)
	mm.sync()
	bad := r.MeshStats().BadEnvelopes.Load()
	var envs [][]byte
	for _, shard := range []uint64{1 << 63, 1<<64 - 1} {
		envs = append(envs, appendResult(nil, 0, 3, rsError, 0, "com.err", "msg", nil))
		w := wbuf(nil)
		w.byte1(envResult)
		w.uv(shard)
		w.uv(3)
		w.uv(rsError)
		w.str("com.err")
		w.str("msg")
		w.payload(&carry{})
		envs = append(envs, []byte(w))
		b := wbuf(nil)
		b.byte1(envBounce)
		b.uv(3)
		b.uv(shard)
		envs = append(envs, []byte(b))
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("an envelope naming shard 2^63 or more: panic %v", p)
			}
		}()
		for _, env := range envs {
			r.MeshDeliver(99, env)
		}
	}()
	mm.sync()
	if d := r.MeshStats().BadEnvelopes.Load() - bad; d != 4 {
		t.Fatalf("%d envelopes naming a shard past the int range counted as malformed, want 4", d)
	}
}
