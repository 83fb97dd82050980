package edge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A claim's value names its node and that node's boot; anything that
// reaches the mesh's store can write any bytes there (a value up to
// NATS's 1 MB). One that names no node that can exist (a name no node may
// have, a boot that is not a number) was taken for a life not heard yet:
// its REGISTER waited peer_timeout, and the claim store kept the name and
// boot (up to 1 MB) among the lives not heard, 4,096 of them, 4 GiB.
func TestClaimOfNoPossibleNodeTakenAtOnce(t *testing.T) {
	t.Parallel()
	url := jsServer(t)
	a := startNode(t, "a", func(o *Options) { o.NatsURL, o.PeerTimeout = url, time.Second })
	waitClaims(t, 10*time.Second, a)
	ctx := ctxT(t, 30*time.Second)
	js, err := jetstream.New(a.n.nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, claimBucket)
	if err != nil {
		t.Fatal(err)
	}
	const k = 8
	for i := range k {
		v := fmt.Sprint(strings.Repeat("x", 256<<10), i, "\n", 1000+i)
		if i%2 == 1 {
			v = fmt.Sprint("z", i, "\n", strings.Repeat("9", 256<<10))
		}
		if _, err := kv.Create(ctx, claimKey("realm1", proto.MatchExact, fmt.Sprint("com.junk.", i)), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	s := a.dial(a.ws(), proto.JSON)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, k)
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Register(ctx, fmt.Sprint("com.junk.", i), h, nil)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Errorf("registering com.junk.%d: %v", i, err)
		}
	}
	held := make(chan int, 1)
	hook := func() {
		n := 0
		for life := range a.n.claims.unheard {
			n += len(life)
		}
		select {
		case held <- n:
		default:
		}
	}
	a.n.claims.testHookNext.Store(&hook)
	if _, err := s.Register(ctx, "com.free", h, nil); err != nil {
		t.Fatal(err)
	}
	a.n.claims.testHookNext.Store(nil)
	n := <-held
	t.Logf("%d claims naming no possible node: %v, %d bytes kept", k, took.Round(time.Millisecond), n)
	if n > 4096 || took > 600*time.Millisecond {
		t.Fatalf("%d claims naming no possible node took %v (peer_timeout 1s) and left %d KiB kept among the lives not heard", k, took.Round(time.Millisecond), n>>10)
	}
}
