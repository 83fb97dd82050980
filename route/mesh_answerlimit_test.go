package route

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A node's answer to a gathered meta call larger than the mesh carries in
// one message (NATS's max_payload, 1 MiB by default with nats_url) was
// refused whole: wamp.session.list on another node listed none of that
// node's sessions and did not say the list was partial.
func TestMeshMetaAnswerWithinMessageLimit(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a := es[0].join(proto.JSON)
	const n = 120 // about 9 bytes an id: over 512 bytes
	for range n {
		es[1].join(proto.JSON)
	}
	mm.sync()
	mm.nodes[1].maxMsg.Store(512)
	req := a.call("wamp.session.list", nil, nil, nil)
	mm.sync()
	m := a.recv()
	if m.Type != proto.CodeResult || m.Request != req {
		t.Fatalf("wamp.session.list: %s", describe(m))
	}
	ids, _ := argsOf(m)[0].([]any)
	if len(ids) < n+1 && dictOf(t, m)[partialKey] == nil {
		t.Fatalf("wamp.session.list with B's answer past the mesh's message limit: %d of %d sessions and no %s", len(ids), n+1, partialKey)
	}
	if fmt.Sprint(dictOf(t, m)[partialKey]) != "map[missing:[nodeB] not_heard_from:false]" {
		t.Fatalf("details %v, want %s naming nodeB", dictOf(t, m), partialKey)
	}
}

// The presence answer (a node's sessions, for on_leave) holds up to 4 MiB:
// past the mesh's message limit it was refused whole, and the asking node
// kept none of that node's sessions (their on_leave missing when it dies).
// It is now cut to the limit, the rest counted as left out.
func TestMeshPresenceAnswerWithinMessageLimit(t *testing.T) {
	defer func(d time.Duration) { presenceRetry = d }(presenceRetry)
	presenceRetry = 20 * time.Millisecond
	mm, es := newMemMesh(t, 2, 1, nil)
	const n = 120 // about 30 bytes a session: over 1 KiB
	for range n {
		es[0].join(proto.JSON)
	}
	mm.sync()
	mm.nodes[0].maxMsg.Store(1024)
	mon := es[1].join(proto.JSON)
	mon.subscribe(metaSessionOnLeave, nil)
	mm.sync()
	deadline := time.Now().Add(3 * time.Second)
	for es[1].r.MeshPresence("realm1") <= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("B keeps %d of A's %d sessions 3 s after subscribing to on_leave, A's answer past the mesh's message limit", es[1].r.MeshPresence("realm1"), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
