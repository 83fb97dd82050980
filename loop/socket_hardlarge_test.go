package loop

import (
	"context"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A subscriber past its hard limit is closed as a slow consumer when a
// large EVENT comes for it, as when a small one does. A RESULT (never
// refused) takes a subscriber that does not read past HardLimit; the next
// message for it closes it (Send). route asks the backlog of such a
// subscriber before it encodes an EVENT of 64 KiB or more (c0a9c05) and
// drops it there, so Send never saw it: a connection that got only large
// events stayed open past its hard limit, holding its backlog, for as
// long as it stayed.
func TestSocketPastHardLimitClosedByLargeEvent(t *testing.T) {
	t.Parallel()
	s := backpressureServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()

	big := make([]byte, bpHardLimit+bpHardLimit/2)
	callee := s.dial("ws", proto.MsgPack)
	if _, err := callee.Register(ctx, "com.big", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{big}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}

	c := dialTCP(t, s.url, 4096)
	sp := subscribeRaw(t, c, "com.flood")
	shrinkRouterSendBuffer(t, c, 4096)
	// A call whose RESULT the subscriber does not read: past HardLimit.
	sp.c.send(sp.callMsg(sp.nextReq(), "com.big", nil))
	eventually(t, ioTimeout, "the subscriber's backlog past its hard limit", func() bool {
		st, ok := s.e.statOf(t, c)
		return ok && st.backlog > bpHardLimit
	})

	pub := s.dial("ws", proto.MsgPack)
	if err := pub.Publish(ctx, "com.flood", []any{make([]byte, 128<<10)}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ioTimeout, "the subscriber past its hard limit closed", func() bool {
		st, ok := s.e.statOf(t, c)
		return !ok || (st.phase != phWS && st.phase != phRaw)
	})
}
