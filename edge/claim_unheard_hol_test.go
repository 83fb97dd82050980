package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Claims held by lives this node has not heard are waited for, up to
// peer_timeout each life; the claim store's one worker slept through
// each wait, one after the other: claims of k lives never heard (nodes
// lost while this node was down, or lives anything that reaches the
// mesh's store wrote) held every other single REGISTER of the node, of a
// free procedure included, k times peer_timeout.
func TestUnheardLivesDoNotHoldOtherClaims(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, 30*time.Second)
	const k = 4
	values := make([]string, k)
	for i := range values {
		values[i] = fmt.Sprint("z\n", 1000+i)
	}
	a := unheardClaimNode(t, ctx, "com.dead.", values)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	s := a.dial(a.ws(), proto.JSON)
	start := time.Now()
	wait := registerEach(ctx, s, "com.dead.", k)
	time.Sleep(50 * time.Millisecond) // the claims of the dead lives first
	free := a.dial(a.ws(), proto.JSON)
	fstart := time.Now()
	if _, err := free.Register(ctx, "com.free", h, nil); err != nil {
		t.Fatalf("registering a free single procedure: %v", err)
	}
	ftook := time.Since(fstart)
	errs := wait()
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Errorf("registering com.dead.%d, held by a life never heard: %v", i, err)
		}
	}
	t.Logf("free procedure %v; %d claims of %d lives never heard %v", ftook.Round(time.Millisecond), k, k, took.Round(time.Millisecond))
	if ftook > 500*time.Millisecond {
		t.Fatalf("the REGISTER of a free single procedure took %v behind %d claims of lives never heard (peer_timeout 1s)", ftook.Round(time.Millisecond), k)
	}
	if took > 2500*time.Millisecond {
		t.Fatalf("%d claims of %d lives never heard took %v, want about peer_timeout (1s), not one after the other", k, k, took.Round(time.Millisecond))
	}
}
