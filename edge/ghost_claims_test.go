package edge

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A node that dies holding the claim of a single registration (killed:
// nothing is released) and restarts under the same name: the claim is its
// earlier life's, whose registrations are gone, so another node may
// register the procedure. It was refused for good
// (procedure_already_exists), the store's owner name being alive again,
// until the restarted node itself happened to register the procedure.
func TestClaimOfACrashedNodeDoesNotOutliveItsRestart(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b", "c")
	waitClaims(t, 20*time.Second, nodes...)
	a, c := nodes[0], nodes[2]
	ctx := ctxT(t, 30*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	if _, err := c.dial(c.rs(), proto.JSON).Register(ctx, "com.exclusive", h, nil); err != nil {
		t.Fatal(err)
	}
	// c is killed: its mesh is gone before its sessions could release
	// anything, as with SIGKILL. It restarts at once, under its name.
	// (Its claim worker stops first, without giving its claims back as a
	// clean shutdown does.)
	c.n.claims.close(time.Time{})
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c.n.Shutdown(sctx)
	cancel()
	c.stop()
	cl := c.n.opts.Cluster
	nodes[2] = startNode(t, "c", func(o *Options) { o.Cluster = cl })
	waitMesh(t, nodes...)
	// Within a heartbeat (a learns the new c's boot from it).
	sa := a.dial(a.ws(), proto.CBOR)
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := sa.Register(ctx, "com.exclusive", h, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registering on a the single procedure the crashed c held before its restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
