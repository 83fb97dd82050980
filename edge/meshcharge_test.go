package edge

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// askBurst is the most gathers a session's full walk budget pays for at
// once (route's walkBurst / meshAskCost: each node a gather asks costs
// 128 of its 65,536 entries; then 4,096 a second).
const askBurst = 512

// countQueries counts the meta queries and get_retained gathers of the
// other nodes that reach node n, as n's own dispatcher receives them (a
// plain NATS client on n's server, subscribed to the query subject).
func countQueries(t *testing.T, n *tnode) *atomic.Int64 {
	t.Helper()
	nc, err := clientPort(n.n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var c atomic.Int64
	if _, err := nc.Subscribe(subjQuery, func(*nats.Msg) { c.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &c
}

// hammer runs op from workers goroutines until queries passes over, or
// stays put for 500 ms (the calls all wait), or d passes; it returns how
// many ops completed, and the first error of one not cut short.
func hammer(workers int, d time.Duration, queries func() int64, over int64, op func(ctx context.Context) error) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var n atomic.Int64
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := op(ctx); err == nil {
					n.Add(1)
				} else if ctx.Err() == nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	last, still := queries(), time.Now()
	for ctx.Err() == nil && last <= over && time.Since(still) < 500*time.Millisecond {
		time.Sleep(10 * time.Millisecond)
		if q := queries(); q != last {
			last, still = q, time.Now()
		}
	}
	cancel()
	wg.Wait()
	if e := first.Load(); e != nil {
		return n.Load(), *e
	}
	return n.Load(), nil
}

// On the real mesh, one session's gathered lookups that find nothing
// (wamp.session.get of a session on no node) and get_retained SUBSCRIBEs
// of an exact topic retained nowhere each ask every other node, which
// answers on its shard 0. They were charged next to nothing: a reviewer
// measured about 14,500 queries a second from one session onto each other
// node. They are charged meshAskCost per node asked now, so that another
// node answers one session at most the walk budget's burst at once (then
// its pace): with the asker's clock stopped, no more.
func TestMeshAbsentSessionGetsBounded(t *testing.T) {
	t.Parallel()
	askBounded(t, "wamp.session.get of an absent session", absentGet)
}

func TestMeshEmptyGetRetainedBounded(t *testing.T) {
	t.Parallel()
	askBounded(t, "get_retained SUBSCRIBE of a topic retained nowhere", func(ctx context.Context, s *client.Session) error {
		_, err := s.Subscribe(ctx, "com.nothing.here", func(*client.Event) {}, &client.SubscribeOptions{GetRetained: true})
		var e *client.Error
		if errors.As(err, &e) && e.URI == proto.URIUnavailable {
			return nil // its walk queue full, as on one node (de6df33)
		}
		return err
	})
}

// absentGet calls wamp.session.get of a session on no node; its
// no_such_session is a success.
func absentGet(ctx context.Context, s *client.Session) error {
	_, err := s.Call(ctx, "wamp.session.get", []any{int64(12345)}, nil, nil)
	var e *client.Error
	if errors.As(err, &e) && e.URI == proto.URINoSuchSession {
		return nil
	}
	return err
}

// askBounded has one session on node a of a mesh of two, a's router clock
// stopped, do op from 64 goroutines, and checks that node b gets at most
// the walk budget's burst of queries (and the session's gathers under
// way) from it.
func askBounded(t *testing.T, what string, op func(context.Context, *client.Session) error) {
	t.Helper()
	base := time.Now()
	clock := func(c *route.Config) { c.Now = func() time.Time { return base } }
	pa, pb := edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	a := startNodeConf(t, "a", clock, func(o *Options) { o.Cluster.Listen = pa; o.Cluster.Routes = []string{"nats://" + pb} })
	b := startNode(t, "b", func(o *Options) { o.Cluster.Listen = pb; o.Cluster.Routes = []string{"nats://" + pa} })
	waitMesh(t, a, b)
	got := countQueries(t, b)
	s := a.dial(a.ws(), proto.MsgPack)
	ctx := ctxT(t, 30*time.Second)
	// b's subscription has reached a: a query is counted (its charge
	// is 128 of the budget's 65,536).
	eventually(t, 10*time.Second, func() error {
		if err := absentGet(ctx, s); err != nil {
			return err
		}
		if got.Load() == 0 {
			return errors.New("no query counted on b")
		}
		return nil
	})
	// Past the node's first two heartbeats, when its gathers stop
	// waiting to know its peers (Gather's settle).
	time.Sleep(2*a.n.opts.Heartbeat + 100*time.Millisecond - a.n.since(a.n.startedAt.Load()))
	// The burst, and the session's 16 gathers under way twice over
	// (charged once answered).
	const lim = askBurst + 64
	q0 := got.Load()
	n, err := hammer(64, 4*time.Second, func() int64 { return got.Load() - q0 }, lim, func(ctx context.Context) error { return op(ctx, s) })
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	q := got.Load() - q0
	t.Logf("%s: %d done by one session with a's clock stopped, b got %d queries (bound %d)", what, n, q, lim)
	if q > lim {
		t.Fatalf("%s: one session made b answer %d queries with its node's clock stopped; its walk budget allows %d", what, q, lim)
	}
}
