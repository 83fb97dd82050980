package edge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// TestControlBytesBounded: node a's control dispatcher stalls (as on a
// meta query over a large realm) while a caller on b sends large calls
// to a callee on a, framed two to a NATS message. The bytes waiting for
// a's dispatchers stay within MaxInbound, the call messages past it are
// dropped and counted (ControlFull, not NATS's slow-consumer drops) and
// their calls end at their timeout; b's heartbeats and a directory
// change b makes during the stall are queued all the same, so that a,
// whose peer timeout is shorter than the stall, keeps b for a peer; and
// every call that was queued reaches the callee once the dispatcher runs
// again, and is answered. Before the bound, the control messages queued
// without a byte limit (16,384 messages of up to 24 MiB).
func TestControlBytesBounded(t *testing.T) {
	t.Parallel()
	const (
		maxInbound = 2 << 20
		size       = 24 << 10 // two calls to a frame (at most 64 KiB)
		calls      = 200      // 4.8 MiB
		minStall   = 3 * time.Second
	)
	nodes := clusterWith(t, func(o *Options) {
		if o.Name == "a" {
			o.MaxInbound = maxInbound
			o.PeerTimeout = 1500 * time.Millisecond // shorter than the stall
		} else {
			o.PeerTimeout = 10 * time.Second // a sends no heartbeat while its dispatcher is stalled
		}
	}, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 90*time.Second)
	var invoked atomic.Int64
	sa := a.dial(a.ws(), proto.MsgPack)
	if _, err := sa.Register(ctx, "com.big", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		if len(inv.Args) == 2 {
			if s, ok := inv.Args[1].(string); ok && len(s) == size {
				invoked.Add(1)
			}
		}
		return &client.Result{}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	sb := b.dial(b.rs(), proto.MsgPack)
	callUntil(t, sb, "com.big", nil)
	time.Sleep(300 * time.Millisecond)

	// Stall a's control dispatcher on a batch of nothing from b (a
	// message the dispatcher ignores), so that b was last heard before
	// the stall, counting the large call envelopes it takes from the
	// queue.
	var taken atomic.Int64
	callSubj := nodeSubject("a", "m")
	release := stallControl(t, a, func(ms []*nats.Msg) {
		for _, m := range ms {
			if m.Subject != callSubj {
				continue
			}
			if !isFrame(m.Data) {
				if len(m.Data) > size && m.Data[0] != 'Z' {
					taken.Add(1)
				}
				continue
			}
			unpackFrame(m.Data, func(env []byte) {
				if len(env) > size {
					taken.Add(1)
				}
			})
		}
	})
	nc, err := clientPort(a.n) // fills a's budget below
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stalledAt := time.Now()
	lost0 := a.n.Stats().PeersLost.Load()
	before := a.n.ctlq.takenBy()

	big := strings.Repeat("x", size)
	var answered, failed atomic.Int64
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := sb.Call(ctx, "com.big", []any{i, big}, nil, &client.CallOptions{Timeout: 12 * time.Second})
			if err == nil {
				answered.Add(1)
				return
			}
			failed.Add(1)
			var we *client.Error
			if !errors.As(err, &we) || we.URI != proto.URICanceled && we.URI != proto.URITimeout {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
		}()
	}
	// The calls fill a's budget. What room is left (less than a call
	// message) is filled to the byte with messages that look like b's
	// route envelopes, so that no heartbeat or directory change would
	// fit without their reserves. Then b registers a procedure: its
	// directory change is queued behind the calls all the same, as are
	// b's heartbeats.
	for deadline := time.Now().Add(20 * time.Second); a.n.Stats().ControlFull.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			a.n.in.b.mu.Lock()
			peak := a.n.in.b.peak
			a.n.in.b.mu.Unlock()
			t.Fatalf("no call dropped within 20 s; %d bytes waited for the dispatchers, bound %d", peak, maxInbound)
		}
	}
	fill := &nats.Msg{Subject: callSubj, Reply: nodeInbox("b")}
	minCost := msgCost(fill)
	eventually(t, 10*time.Second, func() error {
		a.n.in.b.mu.Lock()
		room := a.n.in.b.max - a.n.in.b.used
		a.n.in.b.mu.Unlock()
		if room < minCost {
			return nil
		}
		fill.Data = make([]byte, room-minCost)
		if len(fill.Data) > 0 {
			fill.Data[0] = 'Z' // no envelope kind: dropped by the router
		}
		nc.PublishMsg(fill)
		nc.Flush()
		return fmt.Errorf("%d bytes of room", room)
	})
	filled, filledAt := a.n.ctlq.takenBy(), time.Now()
	if _, err := sb.Register(ctx, "com.late", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"late"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	// The stall lasts past a's peer timeout, and long enough after the
	// budget is full for b to send a few heartbeats.
	time.Sleep(max(time.Until(stalledAt.Add(minStall)), time.Until(filledAt.Add(1600*time.Millisecond))))
	// b's directory change is sent once its REGISTER is handled; on a
	// loaded machine (CI) it came later than that: wait for it a little
	// longer, the dispatcher still held.
	for deadline := time.Now().Add(5 * time.Second); a.n.ctlq.takenBy()[inDir] == filled[inDir] && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	stall := time.Since(stalledAt)

	bytes, peak, _ := a.n.ctlq.queued()
	after := a.n.ctlq.takenBy()
	a.n.in.b.mu.Lock()
	used, usedPeak := a.n.in.b.used, a.n.in.b.peak
	a.n.in.b.mu.Unlock()
	dropped := a.n.Stats().ControlFull.Load()
	queuedCalls := after[inRoute] - before[inRoute]
	t.Logf("stalled %v: %d call messages queued (%d bytes, peak %d; budget used %d, peak %d, bound %d), %d dropped; queued once the budget was full: %d heartbeats, %d directory messages",
		stall.Round(time.Millisecond), queuedCalls, bytes, peak, used, usedPeak, maxInbound, dropped, after[inLive]-filled[inLive], after[inDir]-filled[inDir])
	// The route messages stop at the bound; the few heartbeats and the
	// directory change may pass it, within their reserves.
	if usedPeak > maxInbound+maxInbound/4 || peak > usedPeak {
		t.Errorf("%d bytes waited for the dispatchers (the control queue %d), past the bound %d and its reserve", usedPeak, peak, maxInbound)
	}
	if queuedCalls == 0 || dropped == 0 {
		t.Errorf("%d call messages queued, %d dropped: want both", queuedCalls, dropped)
	}
	if sc := a.n.Stats().SlowConsumer.Load(); sc != 0 {
		t.Errorf("NATS dropped %d messages for a slow consumer", sc)
	}
	if after[inLive]-filled[inLive] < 2 {
		t.Errorf("%d of b's heartbeats queued once the budget was full, want 2 or more", after[inLive]-filled[inLive])
	}
	if after[inDir] == filled[inDir] {
		t.Errorf("b's directory change was not queued once the budget was full")
	}

	// The dispatcher runs again: what was queued is delivered, in order
	// (b's directory change is known at once), and a keeps b for a
	// peer: it counts the heartbeats that came during the stall before
	// it looks for silent peers.
	release()
	eventually(t, 20*time.Second, func() error {
		if bytes, _, _ := a.n.ctlq.queued(); bytes != 0 {
			return fmt.Errorf("%d bytes still counted", bytes)
		}
		return nil
	})
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	res, err := sa.Call(cctx, "com.late", nil, nil, nil)
	cancel()
	if err != nil || len(res.Args) != 1 || res.Args[0] != "late" {
		t.Errorf("a calls com.late, registered on b during the stall: %v %v", res, err)
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("a call failed otherwise than for its timeout: %v", err)
	}
	t.Logf("%d calls answered, %d ended at their timeout; the callee ran %d, the dispatcher took %d", answered.Load(), failed.Load(), invoked.Load(), taken.Load())
	if n := invoked.Load(); n != taken.Load() || n != answered.Load() {
		t.Errorf("the callee ran %d calls, the dispatcher took %d, %d were answered: want all equal", n, taken.Load(), answered.Load())
	}
	if answered.Load() == 0 || failed.Load() == 0 {
		t.Errorf("%d calls answered, %d failed: want both", answered.Load(), failed.Load())
	}
	time.Sleep(time.Until(stalledAt.Add(a.n.opts.PeerTimeout + stall)))
	if p := a.n.Peers(); !slices.Equal(p, []string{"b"}) {
		t.Errorf("a's peers after the stall: %v", p)
	}
	if p := b.n.Peers(); !slices.Equal(p, []string{"a"}) {
		t.Errorf("b's peers after the stall: %v", p)
	}
	if l := a.n.Stats().PeersLost.Load(); l != lost0 {
		t.Errorf("a took b for dead %d times", l-lost0)
	}
	// Nothing is left counted: the count falls to 0 between the live
	// mesh's heartbeats (one of them, 197 bytes, was being handled when a
	// CI run read it at once).
	eventually(t, 10*time.Second, func() error {
		if bytes, _, _ := a.n.ctlq.queued(); bytes != 0 {
			return fmt.Errorf("%d bytes still counted", bytes)
		}
		return nil
	})
}

// TestInboundClasses: what each class of message may fill of the
// inbound budget, which the event and control queues share. Calls fill
// it whole, events and meta traffic three quarters; past the bound the
// other nodes' directory messages and heartbeats are still queued (an
// eighth and a quarter more), in order among the rest.
func TestInboundClasses(t *testing.T) {
	const max = 1 << 20
	b := newInbound(max)
	me := nodeInbox("a") + "."
	ev, ctl := newInq(b, ""), newInq(b, me)
	msg := func(subj string, size int) *nats.Msg {
		return &nats.Msg{Subject: subj, Reply: nodeInbox("b"), Data: make([]byte, size)}
	}
	for _, k := range []struct {
		subj string
		want inClass
	}{
		{me + "m", inRoute}, {me + "a.12", inBulk}, {subjQuery, inBulk},
		{me + "S", inDir}, {subjDelta, inDir},
		{me + "s", inLive}, {me + "x", inLive}, {subjHeartbeat, inLive}, {subjBye, inLive},
	} {
		if got := controlClass(k.subj, me); got != k.want {
			t.Errorf("%s: class %d, want %d", k.subj, got, k.want)
		}
	}
	// Events stop at three quarters.
	if d := ev.push([]*nats.Msg{msg("ew.e2.realm1.t", max/2), msg("ew.e2.realm1.t", max/4)}); d != 1 {
		t.Fatalf("events: %d dropped, want 1 (past three quarters)", d)
	}
	// Calls fill the rest, meta traffic does not.
	if d := ctl.push([]*nats.Msg{msg(me+"a.1", max/4), msg(subjQuery, max/4)}); d != 2 {
		t.Fatalf("meta traffic past three quarters: %d dropped, want 2", d)
	}
	call := msg(me+"m", max/2-2*msgOverhead-200)
	if d := ctl.push([]*nats.Msg{call, msg(me+"m", 1024)}); d != 1 {
		t.Fatalf("calls: %d dropped, want 1 (past the bound)", d)
	}
	// Past the bound: directory messages within an eighth more, the
	// others' heartbeats, goodbyes, sync requests within a quarter.
	delta, sync := msg(subjDelta, 300), msg(me+"S", max/8-1024)
	hb := msg(subjHeartbeat, 20)
	late := msg(me+"m", 10)
	if d := ctl.push([]*nats.Msg{delta, late, hb, sync}); d != 1 {
		t.Fatalf("past the bound: %d dropped, want 1 (the call)", d)
	}
	if d := ctl.push([]*nats.Msg{msg(subjDelta, 2048)}); d != 1 {
		t.Fatalf("a directory change past its reserve: %d dropped, want 1", d)
	}
	bye, x := msg(subjBye, 8), msg(me+"x", 16)
	if d := ctl.push([]*nats.Msg{bye, x}); d != 0 {
		t.Fatalf("goodbye and forgotten within their reserve: %d dropped", d)
	}
	if d := ctl.push([]*nats.Msg{msg(subjHeartbeat, max/8)}); d != 1 {
		t.Fatalf("a heartbeat past the reserve: %d dropped, want 1", d)
	}
	got := ctl.take(nil)
	if want := []*nats.Msg{call, delta, hb, sync, bye, x}; !slices.Equal(got, want) {
		t.Errorf("the control queue holds %d messages, not the %d admitted in order", len(got), len(want))
	}
	b.mu.Lock()
	used := b.used
	b.mu.Unlock()
	if used > max+max/4 {
		t.Errorf("%d bytes used, past the bound and its reserves", used)
	}
	var cost int64
	for _, m := range got {
		cost += msgCost(m)
	}
	ctl.done(cost)
	for _, m := range ev.take(nil) {
		ev.done(msgCost(m))
	}
	if b.used != 0 || ev.bytes != 0 || ctl.bytes != 0 {
		t.Errorf("%d bytes still counted (events %d, control %d)", b.used, ev.bytes, ctl.bytes)
	}
}

// TestControlSharesMaxInbound: Options.MaxInbound (mesh.max_inbound)
// bounds the control queue as well as the event queue, as one budget;
// the default is 64 MiB.
func TestControlSharesMaxInbound(t *testing.T) {
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ set, want int64 }{{0, 64 << 20}, {8 << 20, 8 << 20}} {
		n, err := New(Options{Router: r, Name: "a", Cluster: ClusterOptions{Listen: "127.0.0.1:0"}, MaxInbound: k.set, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if n.ctlq == nil || n.ctlq.b != n.in.b {
			t.Fatalf("MaxInbound %d: the control queue does not share the event queue's budget", k.set)
		}
		if b := n.ctlq.b; b.max != k.want || b.lim[inRoute] != k.want || b.lim[inBulk] != k.want*3/4 || b.lim[inLive] != k.want*5/4 {
			t.Errorf("MaxInbound %d: budget %d, limits %v; want %d", k.set, b.max, b.lim, k.want)
		}
	}
}
