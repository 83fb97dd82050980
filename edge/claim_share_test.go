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

// TestClaimStoreSharedBetweenNodes: the claim bucket is the mesh's, and
// nothing bounded what one session or one node held of it: one session
// registering single procedures on node A filled it, and every single
// REGISTER of every node was then refused wamp.error.unavailable (two
// sessions at limits.registrations fill the real 16 MiB). Here a 64 KiB
// bucket stands for it. A session holds at most a quarter of its node's
// share, a node a quarter of the bucket: one session on A, then eight,
// are refused past their shares (wamp.error.unavailable, counted), and a
// session on B still registers.
func TestClaimStoreSharedBetweenNodes(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, 60*time.Second)
	url := jsServer(t)
	small := func(o *Options) { o.NatsURL, o.testClaimBytes = url, 64<<10 }
	a := startNode(t, "a", small)
	b := startNode(t, "b", small)
	waitMesh(t, a, b)
	waitClaims(t, 10*time.Second, a, b)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	single := &client.RegisterOptions{Invoke: "single"}
	uri := func(p string, i int) string { return fmt.Sprint(p+strings.Repeat("x", 64)+".", i) }
	unavailable := func(err error) bool {
		var we *client.Error
		return errors.As(err, &we) && we.URI == proto.URIUnavailable
	}
	// fill registers single procedures from s until one is refused (at
	// most max), and returns how many it got and the refusal.
	var last *client.Registration
	fill := func(s *client.Session, p string, max int) (int, error) {
		for i := range max {
			r, err := s.Register(ctx, uri(p, i), h, single)
			if err != nil {
				return i, err
			}
			last = r
		}
		return max, nil
	}
	// One session: more REGISTERs than the whole bucket holds (~450).
	s0 := a.dial(a.ws(), proto.JSON)
	n, err := fill(s0, "com.a0.", 700)
	t.Logf("one session on a: %d single registrations, then %v", n, err)
	if !unavailable(err) {
		t.Fatalf("one session on a: %d single registrations, then %v; want wamp.error.unavailable", n, err)
	}
	// Other policies are not bounded by it; its own procedure again is
	// refused as below it; and its share comes back as it unregisters.
	if _, err := s0.Register(ctx, "com.a0.shared", h, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
		t.Fatalf("a shared REGISTER past the session's single share: %v", err)
	}
	if _, err := s0.Register(ctx, uri("com.a0.", 0), h, single); err == nil || unavailable(err) {
		t.Fatalf("a REGISTER of the session's own single procedure at its share: %v, want procedure_already_exists", err)
	}
	if err := s0.Unregister(ctx, last); err != nil {
		t.Fatal(err)
	}
	if last, err = s0.Register(ctx, "com.a0.again", h, single); err != nil {
		t.Fatalf("a single REGISTER after the session unregistered one at its share: %v", err)
	}
	sb := b.dial(b.ws(), proto.JSON)
	if _, err := sb.Register(ctx, "com.b.first", h, single); err != nil {
		t.Fatalf("b's single REGISTER after one session on a registered %d: %v", n, err)
	}
	// Eight more sessions on a: the node's share stops them together.
	total := n
	for k := 1; k <= 8; k++ {
		m, err := fill(a.dial(a.ws(), proto.JSON), fmt.Sprintf("com.a%d.", k), 700)
		total += m
		if !unavailable(err) {
			t.Fatalf("session %d on a: %d single registrations, then %v; want wamp.error.unavailable", k, m, err)
		}
	}
	t.Logf("nine sessions on a: %d single registrations", total)
	if _, err := sb.Register(ctx, "com.b.second", h, single); err != nil {
		t.Fatalf("b's single REGISTER after a's sessions registered %d: %v", total, err)
	}
	if got := a.n.stats.ClaimsNodeShare.Load(); got == 0 {
		t.Fatal("no refusal counted in ClaimsNodeShare")
	}
	if got := a.n.stats.ClaimsSessionShare.Load(); got == 0 {
		t.Fatal("no refusal counted in ClaimsSessionShare")
	}
	if got := a.n.stats.ClaimsStoreFull.Load(); got != 0 {
		t.Fatalf("the store refused %d claims for want of room", got)
	}
}
