package edge

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// The release of a provisional claim whose write the store took but
// answered too late (giveBack with no revision) reads the key to find
// this life's entry, and takes "none" or another's for given back. That
// read was a direct get (the claim bucket allows them), which a replica
// picked at random answers, a follower that has not caught up among
// them: one without the late write answered "none", the release was
// taken as done, and the store kept the claim of a live node whose
// registration was gone (every other node's REGISTER refused
// procedure_already_exists until it left). It is now read through the
// stream's leader, which took the write.
func TestProvisionalClaimReleaseReadsThroughStreamLeader(t *testing.T) {
	t.Parallel()
	url, a, _ := jsPair(t, "a", "b")
	ctx := ctxT(t, 30*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	sa := a.dial(a.ws(), proto.JSON)
	key := claimKey("realm1", proto.MatchExact, "com.late")

	// As TestProvisionalClaimWrittenLateIsGivenBack: the store stops
	// answering in time, com.late is claimed provisionally, then written
	// by the worker's reconcile and answered too late.
	down := func(string, error) error { return context.DeadlineExceeded }
	reg, err := sa.Register(ctx, "com.first", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.n.claims.testHookStore.Store(&down)
	if err := sa.Unregister(ctx, reg); err != nil {
		t.Fatal(err)
	}
	late, err := sa.Register(ctx, "com.late", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan struct{})
	var once bool
	slow := func(op string, err error) error {
		if op == "create" && err == nil && !once {
			once = true
			close(wrote)
		}
		if op == "create" {
			return context.DeadlineExceeded
		}
		return err
	}
	a.n.claims.testHookStore.Store(&slow)
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not try the provisional claim again")
	}

	// a's reads of the key from here on, by kind (a's requests are told
	// by their replies, to a's connection's inboxes).
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	inbox := a.n.nc.NewRespInbox()
	inbox = inbox[:strings.LastIndexByte(inbox, '.')+1]
	var direct, leader atomic.Int64
	sub, err := nc.Subscribe("$JS.>", func(m *nats.Msg) {
		if !strings.HasPrefix(m.Reply, inbox) {
			return
		}
		switch {
		case strings.Contains(m.Subject, ".DIRECT.GET.KV_"+claimBucket) && (strings.HasSuffix(m.Subject, key) || strings.Contains(string(m.Data), key)):
			direct.Add(1)
		case strings.Contains(m.Subject, ".STREAM.MSG.GET.KV_"+claimBucket) && strings.Contains(string(m.Data), key):
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
	if err := sa.Unregister(ctx, late); err != nil {
		t.Fatal(err)
	}
	a.n.claims.testHookStore.Store(nil)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "KV_"+claimBucket)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if _, err := st.GetLastMsgForSubject(ctx, "$KV."+claimBucket+"."+key); !errors.Is(err, jetstream.ErrMsgNotFound) {
			return errors.New("a's provisional claim written late is still in the store")
		}
		return nil
	})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Logf("the release of the provisional claim: %d direct gets, %d gets through the stream leader", direct.Load(), leader.Load())
	if d := direct.Load(); d != 0 {
		t.Errorf("the release of a provisional claim read it by %d direct gets (a replica that has not caught up answers them too), want none", d)
	}
	if leader.Load() == 0 {
		t.Error("the release of a provisional claim did not read it through the stream leader")
	}
}
