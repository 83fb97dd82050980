package route

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A gathered meta call waiting in its session for a turn to ask the other
// nodes (its session's 16 gathers busy while a node answers slowly, or its
// walk budget in debt) holds its query, up to 64 KiB of arguments (options
// the procedure does not read included): a
// session's 64 held about 4 MiB, in no budget (measured here: 8 sessions
// of 80 such calls, +50 MB of heap), and an address may open 1,024
// sessions. The queued calls of all sessions are now bounded in bytes
// (maxQueuedAsks); past it a call is refused wamp.error.unavailable, as
// past its session's queue, and every call is still answered.
func TestMeshQueuedMetaCallsBoundedInBytes(t *testing.T) {
	defer func(v int64) { maxQueuedAsks = v }(maxQueuedAsks)
	maxQueuedAsks = 1 << 20
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	const sessions = 4
	var atts []*tc
	for range sessions {
		atts = append(atts, e.join(proto.MsgPack))
	}
	mm.sync()
	e.advance(time.Minute)
	mm.nodes[0].gatherHold.Store(true) // a slow node: the gathers wait
	junk := strings.Repeat("x", 60<<10)
	const calls = maxSessionGathers + maxSessionGatherQueue
	for _, att := range atts {
		for range calls {
			att.call("wamp.subscription.lookup", nil, []any{"com.a", map[string]any{"match": "exact", "pad": junk}}, nil)
		}
	}
	mm.sync()
	held := e.r.ms.asksQueued.Load()
	refused := make([]int, sessions)
	total := 0
	for i, att := range atts {
		_, refused[i] = answeredAtOnce(att)
		total += refused[i]
	}
	t.Logf("%d sessions × %d calls of 60 KiB while the other node is slow: %d bytes queued (bound %d), %d refused", sessions, calls, held, maxQueuedAsks, total)
	if held > maxQueuedAsks {
		t.Fatalf("the queued meta calls hold %d bytes, past the bound %d", held, maxQueuedAsks)
	}
	if want := sessions*maxSessionGatherQueue - int(maxQueuedAsks/(60<<10)); total < want {
		t.Fatalf("%d calls refused while %d sessions' calls of 60 KiB waited for a slow node; want at least %d (the queued ones bounded to %d bytes)", total, sessions, want, maxQueuedAsks)
	}
	// A session that leaves gives back what its queued calls counted; the
	// others' are answered once the node answers (none is lost), and give
	// it back as they ask.
	atts[0].drop()
	mm.sync()
	mm.nodes[0].releaseGathers()
	for i, att := range atts[1:] {
		res, more := drainMeta(t, att, calls-refused[i+1], func() { mm.sync() })
		if res+more != calls-refused[i+1] {
			t.Fatalf("session %d: %d of %d calls answered once the node answered", i+1, res+more, calls-refused[i+1])
		}
	}
	if n := e.r.ms.asksQueued.Load(); n != 0 {
		t.Fatalf("%d bytes still counted for queued meta calls once all were asked or their session left", n)
	}
}
