package edge

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A node that dies gives its claims back to nobody: they stayed in the
// store (in memory on the store's nodes) until another node registered
// the same procedures, for ever for procedures no node registers again
// (URIs named after a device or a session). A store node now sweeps the
// claims of lives it saw end; those of live nodes stay.
func TestClaimsOfDeadNodesSwept(t *testing.T) {
	t.Parallel()
	url := jsServer(t)
	sweep := func(o *Options) { o.NatsURL, o.testClaimSweep = url, 300*time.Millisecond }
	a := startNode(t, "a", sweep)
	b := startNode(t, "b", sweep)
	waitMesh(t, a, b)
	waitClaims(t, 10*time.Second, a, b)
	ctx := ctxT(t, 30*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	const k = 20
	sa, sb := a.dial(a.ws(), proto.JSON), b.dial(b.rs(), proto.JSON)
	for i := range k {
		if _, err := sa.Register(ctx, "com.a."+strconv.Itoa(i), h, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Register(ctx, "com.b."+strconv.Itoa(i), h, nil); err != nil {
			t.Fatal(err)
		}
	}
	claims := func() (uint64, error) {
		info, err := a.n.claims.stream.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.State.Msgs, nil
	}
	if n, err := claims(); err != nil || n != 2*k {
		t.Fatalf("%d claims in the store (%v), want %d", n, err, 2*k)
	}
	// b dies: nothing given back (its claim worker stops first, as
	// with SIGKILL); a sees it end.
	b.n.claims.close(time.Time{})
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	b.n.Shutdown(sctx)
	cancel()
	b.stop()
	var last error
	if !within(5*time.Second, func() error {
		n, err := claims()
		if err == nil && n != k {
			err = fmt.Errorf("%d claims in the store, want a's %d (swept %d)", n, k, a.n.Stats().ClaimsSwept.Load())
		}
		last = err
		return err
	}) {
		t.Fatal(last)
	}
	// a's stay a's.
	s2 := startNode(t, "c", func(o *Options) { o.NatsURL = url })
	waitMesh(t, a, s2)
	waitClaims(t, 10*time.Second, s2)
	if _, err := s2.dial(s2.ws(), proto.JSON).Register(ctx, "com.a.0", h, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("REGISTER elsewhere of a single procedure a holds after the sweep: %v", err)
	}
}
