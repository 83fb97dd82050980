package edge

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// A meta event on a mesh node goes to this node's subscribers, each
// shard's through its mailbox, and to the mesh. The mesh's envelope was
// written after the event was handed to the other shards, and writing it
// sets the publication's retained flag (meshPublish), which the shards
// read as they deliver it: a data race (go test -race) on every meta
// event with subscribers on more than one shard of a mesh node.
func TestMetaEventsOnAMeshNodeDoNotRace(t *testing.T) {
	t.Parallel()
	a := startNode(t, "hub", func(o *Options) { o.Leaf.Listen = edgetest.FreeAddr(t) })
	ctx := ctxT(t, 30*time.Second)
	var got atomic.Int64
	const subscribers, joins = 4, 8
	for range subscribers { // on both of the node's shards
		s := a.dial(a.ws(), proto.JSON)
		if _, err := s.Subscribe(ctx, "wamp.session.on_join", func(*client.Event) { got.Add(1) }, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range joins {
		a.dial(a.rs(), proto.MsgPack).Close()
	}
	eventually(t, 10*time.Second, func() error {
		if n := got.Load(); n < subscribers*joins {
			return fmt.Errorf("%d of %d on_join events", n, subscribers*joins)
		}
		return nil
	})
}
