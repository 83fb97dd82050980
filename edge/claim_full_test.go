package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestClaimStoreFullRefusesRegister: once the claim bucket is full (its
// own MaxBytes; before, it had none and shared JetStream's 64 MiB of
// memory, which ~460,000 single registrations filled), a claim the store
// refuses for want of room is not a store that does not answer: the
// REGISTER is refused with wamp.error.unavailable at once. Before, each
// node's first such claim held the claim worker for claimWait (3 s),
// retrying, then was accepted provisionally, and so was every later claim
// on every node (the store taken for down): exclusivity rested on the
// directory alone.
func TestClaimStoreFullRefusesRegister(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, 30*time.Second)
	url := jsServer(t)
	a := startNode(t, "a", func(o *Options) { o.NatsURL, o.testClaimBytes = url, 4<<10 })
	waitClaims(t, 10*time.Second, a)
	s := a.dial(a.ws(), proto.JSON)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	single := &client.RegisterOptions{Invoke: "single"}
	var refused error
	n := 0
	for ; n < 200 && refused == nil; n++ {
		_, refused = s.Register(ctx, fmt.Sprint("com.fill."+strings.Repeat("x", 64)+".", n), h, single)
	}
	if p := a.n.stats.ClaimsProvisional.Load(); p != 0 {
		t.Fatalf("%d claims accepted provisionally in a full claim store (%d REGISTERs, last error %v)", p, n, refused)
	}
	var we *client.Error
	if !errors.As(refused, &we) || we.URI != proto.URIUnavailable {
		t.Fatalf("%d REGISTERs in a 4 KiB claim store: last error %v, want %s", n, refused, proto.URIUnavailable)
	}
	if f := a.n.stats.ClaimsStoreFull.Load(); f != 1 {
		t.Fatalf("ClaimsStoreFull = %d, want 1", f)
	}
	t.Logf("refused after %d claims: %v", n-1, refused)
}
