package edge

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/proto"
)

// The check of a node's claims (checkHeld) compares each with the store's
// state it read from the bucket stream's leader (storeMark), and records
// that state as checked. The claim bucket allows direct gets (JetStream's
// KV default), which a replica picked at random answers, a follower not
// caught up among them (nats-server enables a follower's direct gets at
// 90 % of its log applied, and keeps them when it falls behind): a node
// back from the minority side of a partition could read its claim, taken
// over meanwhile, as its own from its own lagging replica, record the
// leader's newer state as checked, and skip every later check until some
// other write. Each claim is now read through the
// stream's leader (STREAM.MSG.GET), as the state is: none by a direct get.
func TestClaimRecheckReadsClaimsThroughStreamLeader(t *testing.T) {
	t.Parallel()
	const claims = 20
	hubs := cluster(t, "h1", "h2", "h3")
	waitClaims(t, 30*time.Second, hubs...)
	h1 := hubs[0]
	registerMany(t, h1.dial(h1.ws(), proto.JSON), "com.leader.", claims, 24)
	recheckSettled(t, h1)

	// Every JetStream request of the account, seen on h1 (where h1's
	// node makes them), but those of the claim taken over below, which
	// h1 claims again (take reads the key it found taken).
	uri := "com.leader.3."
	key := claimKey("realm1", proto.MatchExact, uri+strings.Repeat("x", 24-len(uri)))
	nc, err := clientPort(h1.n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := ctxT(t, 20*time.Second)
	js, err := jetstream.NewWithDomain(nc, jsDomain)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "KV_"+claimBucket)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.Replicas != 3 || !c.AllowDirect {
		t.Fatalf("the claim bucket's stream has %d replicas, direct gets %v: want 3, allowed", c.Replicas, c.AllowDirect)
	}
	var direct, leader atomic.Int64
	sub, err := nc.Subscribe("$JS.>", func(m *nats.Msg) {
		switch {
		case strings.HasSuffix(m.Subject, key):
		case strings.Contains(m.Subject, ".API.DIRECT.GET.KV_"+claimBucket):
			direct.Add(1)
		case strings.Contains(m.Subject, ".API.STREAM.MSG.GET.KV_"+claimBucket):
			leader.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// A claim taken over behind h1's back: the store changed, so a join
	// reads every claim again, and finds that one lost.
	if _, err := hubs[1].n.claims.kv.Put(ctx, key, []byte("someone-else")); err != nil {
		t.Fatal(err)
	}
	was := h1.n.Stats().ClaimsReasserted.Load()
	if r := recheckSettled(t, h1); r < claims {
		t.Fatalf("a join after the store changed read it %d times, want every claim (%d)", r, claims)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Logf("the check of %d claims: %d direct gets, %d gets through the stream leader", claims, direct.Load(), leader.Load())
	if d := direct.Load(); d != 0 {
		t.Errorf("the check of %d claims made %d direct gets (any replica answers, a lagging one too), want none", claims, d)
	}
	if l := leader.Load(); l < claims {
		t.Errorf("the check of %d claims read %d of them through the stream leader, want all", claims, l)
	}
	if h1.n.Stats().ClaimsReasserted.Load() == was {
		t.Fatalf("the claim of %s taken over was not found at the check", key)
	}
}
