package edge

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
)

// A call without a timeout from an edge's caller to a hub's callee that
// waits for its INTERRUPT, canceled (killnowait) at the edge while the
// uplink is cut (and restored within the peer timeout), is ended on the
// hub too: its interrupt was lost with the link, and the hub, which
// bounds only calls with a timeout, held the invocation and its callee
// waited for ever. The edge sends the interrupt again past the peer
// timeout and a second.
func TestLeafFlapLostInterruptOfUntimedCallSentAgain(t *testing.T) {
	t.Parallel()
	flapLostInterrupt(t, 3*time.Second, &client.CallOptions{CancelMode: "killnowait"}, func(cancel func(), done <-chan error) {
		cancel() // the interrupt is lost with the link
		if err := <-done; err == nil {
			t.Fatal("the canceled call succeeded")
		}
	}, 8*time.Second)
}
