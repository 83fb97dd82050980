package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// The drain before a stop (route/drain.go), on three nodes meshed by real
// NATS servers: A drains while calls run on its callees.

func drainCluster(t *testing.T) (a, b, c *tnode, calleeA, calleeB *client.Session) {
	t.Helper()
	ns := cluster(t, "a", "b", "c")
	a, b, c = ns[0], ns[1], ns[2]
	calleeA = a.dial(a.ws(), proto.JSON)
	calleeB = b.dial(b.rs(), proto.MsgPack)
	ctx := ctxT(t, 10*time.Second)
	for _, x := range []struct {
		s    *client.Session
		name string
	}{{calleeA, "A"}, {calleeB, "B"}} {
		name := x.name
		if _, err := x.s.Register(ctx, "com.shared", func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{name}}, nil
		}, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
			t.Fatal(err)
		}
	}
	return a, b, c, calleeA, calleeB
}

// sharedSeen calls com.shared from s until both A and B answered.
func sharedSeen(t *testing.T, s *client.Session) {
	t.Helper()
	seen := map[string]bool{}
	eventually(t, 15*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := s.Call(ctx, "com.shared", nil, nil, nil)
		if err == nil && len(res.Args) == 1 {
			seen[fmt.Sprint(res.Args[0])] = true
		}
		if !seen["A"] || !seen["B"] {
			return fmt.Errorf("com.shared answered by %v (err %v)", seen, err)
		}
		return nil
	})
}

// stopDrained stops tn as edgewamp does on SIGTERM: a drain of up to d,
// then the GOODBYEs and the mesh's leave. It returns the drain's error.
func stopDrained(tn *tnode, d time.Duration) error {
	dctx, cancel := context.WithTimeout(context.Background(), d)
	err := tn.eng.Drain(dctx)
	cancel()
	tn.stop()
	return err
}

// gatedProc registers proc on s: its first call is answered at once,
// each later one signals started, then waits until open is called (at the
// test's end at the latest); every call's result is args.
func gatedProc(ctx context.Context, t *testing.T, s *client.Session, proc string, args ...any) (started <-chan struct{}, open func()) {
	t.Helper()
	st := make(chan struct{}, 8)
	release := make(chan struct{})
	var once sync.Once
	open = func() { once.Do(func() { close(release) }) }
	t.Cleanup(open) // before the nodes stop: a failed test must not leave the handler blocked
	var gated atomic.Bool
	if _, err := s.Register(ctx, proc, func(context.Context, *client.Invocation) (*client.Result, error) {
		if gated.Load() {
			st <- struct{}{}
			<-release
		}
		gated.Store(true)
		return &client.Result{Args: args}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	return st, open
}

// waitDraining waits up to 5 s for tn's router to be draining.
func waitDraining(t *testing.T, tn *tnode) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		if !tn.r.Draining() {
			return errors.New("A not draining yet")
		}
		return nil
	})
}

// startDrain runs stopDrained(tn, d) and waits for the drain to begin;
// the channel gets the drain's error.
func startDrain(t *testing.T, tn *tnode, d time.Duration) <-chan error {
	t.Helper()
	stopped := make(chan error, 1)
	go func() { stopped <- stopDrained(tn, d) }()
	waitDraining(t, tn)
	return stopped
}

// waitStopped waits up to 15 s for the drain's error on stopped, and
// wants none: ended says what ended the drain, end what it waited for.
func waitStopped(t *testing.T, stopped <-chan error, ended, end string) {
	t.Helper()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("drain: %v, want nil (%s)", err, ended)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("A did not stop within 15 s of %s", end)
	}
}

type callOutcome struct {
	res *client.Result
	err error
}

func goCall(s *client.Session, proc string) <-chan callOutcome {
	ch := make(chan callOutcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := s.Call(ctx, proc, nil, nil, nil)
		ch <- callOutcome{res, err}
	}()
	return ch
}

// TestDrainLetsCallsInFlightFinish: calls in flight on A's callee when A
// begins to drain complete at their callers, one on another node and one
// on A; calls made during the drain to a registration shared with B go
// to B, from C and from A; a call whose only callee is on A is refused
// no_available_callee; the drain ends once the calls have, and only then
// do A's sessions get GOODBYE. Before, a stop said GOODBYE at once: the
// callers got wamp.error.canceled (C) and lost their session (A) within
// a millisecond.
func TestDrainLetsCallsInFlightFinish(t *testing.T) {
	t.Parallel()
	a, _, c, calleeA, _ := drainCluster(t)
	ctx := ctxT(t, 30*time.Second)
	started := make(chan struct{}, 8)
	release := make(chan struct{})
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(open) // before the nodes stop: a failed test must not leave the handler blocked
	var gated atomic.Bool
	if _, err := calleeA.Register(ctx, "com.slow", func(context.Context, *client.Invocation) (*client.Result, error) {
		started <- struct{}{}
		if gated.Load() {
			<-release
		}
		return &client.Result{Args: []any{"slow done"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	callerC := c.dial(c.ws(), proto.CBOR)
	callerA := a.dial(a.rs(), proto.JSON)
	sharedSeen(t, callerC)
	callUntil(t, callerC, "com.slow", nil)
	<-started
	gated.Store(true)

	fromC, fromA := goCall(callerC, "com.slow"), goCall(callerA, "com.slow")
	for range 2 {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("the slow calls did not reach A's callee")
		}
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stopDrained(a, 10*time.Second) }()
	eventually(t, 5*time.Second, func() error {
		select {
		case err := <-stopped:
			t.Fatalf("A stopped (drain: %v) with two calls in flight on its callee", err)
		default:
		}
		if !a.r.Draining() {
			return errors.New("A not draining yet")
		}
		return nil
	})
	// During the drain: the shared registration's calls go to B.
	for i := range 6 {
		s := callerC
		if i%2 == 1 {
			s = callerA
		}
		res, err := s.Call(ctx, "com.shared", nil, nil, nil)
		if err != nil || len(res.Args) != 1 || res.Args[0] != "B" {
			t.Fatalf("call %d of com.shared during A's drain: %v %v, want B's answer", i, res, err)
		}
	}
	_, err := callerA.Call(ctx, "com.slow", nil, nil, nil)
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URINoAvailableCallee || !strings.Contains(fmt.Sprint(we.Args), "shutting down") {
		t.Fatalf("a new call to a procedure only A's callee has, during A's drain: %v, want %s (shutting down)", err, proto.URINoAvailableCallee)
	}
	select {
	case err := <-stopped:
		t.Fatalf("A stopped (drain: %v) with two calls in flight on its callee", err)
	default:
	}
	open()
	for _, ch := range []<-chan callOutcome{fromC, fromA} {
		o := <-ch
		if o.err != nil || len(o.res.Args) != 1 || o.res.Args[0] != "slow done" {
			t.Fatalf("a call in flight when A began to drain: %v %v, want its result", o.res, o.err)
		}
	}
	waitStopped(t, stopped, "the calls ended", "its calls' end")
}

// TestDrainDeadlineForCalleeThatNeverAnswers: a callee that never answers
// holds the drain to its deadline, not longer; the GOODBYEs after it
// answer its caller on another node wamp.error.canceled, saying that the
// router shut down.
func TestDrainDeadlineForCalleeThatNeverAnswers(t *testing.T) {
	t.Parallel()
	a, _, c, calleeA, _ := drainCluster(t)
	ctx := ctxT(t, 30*time.Second)
	started := make(chan struct{}, 1)
	if _, err := calleeA.Register(ctx, "com.never", func(ictx context.Context, _ *client.Invocation) (*client.Result, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ictx.Done()
		return nil, ictx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	callerC := c.dial(c.ws(), proto.MsgPack)
	eventually(t, 10*time.Second, func() error {
		res, err := callerC.Call(ctx, "wamp.registration.lookup", []any{"com.never"}, nil, nil)
		if err != nil || len(res.Args) == 0 || res.Args[0] == nil {
			return fmt.Errorf("com.never not yet known on C: %v", err)
		}
		return nil
	})
	fromC := goCall(callerC, "com.never")
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the call did not reach A's callee")
	}
	const deadline = 500 * time.Millisecond
	begin := time.Now()
	err := stopDrained(a, deadline)
	took := time.Since(begin)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain with a callee that never answers: %v, want its deadline passed", err)
	}
	if took < deadline {
		t.Fatalf("stopped after %v, before the drain's %v", took, deadline)
	}
	select {
	case o := <-fromC:
		var we *client.Error
		if !errors.As(o.err, &we) || we.URI != proto.URICanceled || !strings.Contains(fmt.Sprint(we.Args), "shut down") {
			t.Fatalf("the call still in progress at the drain's deadline: %v %v, want %s (shut down)", o.res, o.err, proto.URICanceled)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the call still in progress at the drain's deadline got no answer within 15 s")
	}
}

// TestDrainWaitsForCallsMadeDuringIt: a call A's caller makes during A's
// drain, sent to B's callee, still running when what held the drain (a
// call on A's callee from before it) has ended, completes at its caller;
// meanwhile A takes no new call (refused no_available_callee, "it takes
// no new calls"), and the drain ends once that call has. Before, the
// drain ended with the call from before it and A's GOODBYE closed the
// caller's session with its call to B in progress: the caller lost it
// (its session gone), B's callee ran it for nothing.
func TestDrainWaitsForCallsMadeDuringIt(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b")
	a, b := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	calleeA := a.dial(a.ws(), proto.JSON)
	calleeB := b.dial(b.rs(), proto.MsgPack)
	startedA, openA := gatedProc(ctx, t, calleeA, "com.a.slow", "com.a.slow done")
	startedB, openB := gatedProc(ctx, t, calleeB, "com.b.slow", "com.b.slow done")
	if _, err := calleeB.Register(ctx, "com.b.quick", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	callerA := a.dial(a.rs(), proto.JSON)
	for _, p := range []string{"com.a.slow", "com.b.slow", "com.b.quick"} {
		callUntil(t, callerA, p, nil) // known on A; the gates close
	}
	before := goCall(callerA, "com.a.slow")
	<-startedA
	stopped := startDrain(t, a, 15*time.Second)
	during := goCall(callerA, "com.b.slow")
	select {
	case <-startedB:
	case o := <-during:
		t.Fatalf("a call to B's callee from A during A's drain: %v %v, want it to reach B", o.res, o.err)
	case <-ctx.Done():
		t.Fatal("the call made during the drain did not reach B's callee")
	}
	openA()
	if o := <-before; o.err != nil {
		t.Fatalf("the call from before the drain: %v", o.err)
	}
	// A takes no new call now, and waits for the one made during its drain.
	eventually(t, 5*time.Second, func() error {
		select {
		case o := <-during:
			t.Fatalf("the call made during the drain ended before its callee answered: %v %v, want its result", o.res, o.err)
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := callerA.Call(cctx, "com.b.quick", nil, nil, nil)
		var we *client.Error
		if !errors.As(err, &we) || we.URI != proto.URINoAvailableCallee || !strings.Contains(fmt.Sprint(we.Args), "no new calls") {
			return fmt.Errorf("a new call once what held the drain ended: %v, want %s (no new calls)", err, proto.URINoAvailableCallee)
		}
		return nil
	})
	select {
	case o := <-during:
		t.Fatalf("the call made during the drain ended before its callee answered: %v %v", o.res, o.err)
	case err := <-stopped:
		t.Fatalf("A stopped (drain: %v) with a call of its caller in progress", err)
	default:
	}
	openB()
	if o := <-during; o.err != nil || len(o.res.Args) != 1 || o.res.Args[0] != "com.b.slow done" {
		t.Fatalf("the call made during the drain: %v %v, want its result", o.res, o.err)
	}
	waitStopped(t, stopped, "the calls ended", "its calls' end")
}

// TestDrainGivesSingleClaimsBack: while A drains, with a call in flight on
// its callee of a single registration, a callee on B registers the
// procedure at once and takes the new calls (from C), while A's call in
// flight completes on A's callee; once A has stopped, B still holds the
// claim in the store (A's leave gave back nothing of B's), and a third
// REGISTER, on C, is refused. Before, A held the claim until its GOODBYE, and B's REGISTER
// was refused procedure_already_exists for the whole drain.
func TestDrainGivesSingleClaimsBack(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b", "c")
	a, b, c := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 30*time.Second)
	calleeA := a.dial(a.ws(), proto.JSON)
	started, open := gatedProc(ctx, t, calleeA, "com.one", "A")
	callerC := c.dial(c.ws(), proto.CBOR)
	callUntil(t, callerC, "com.one", nil)
	inflight := goCall(callerC, "com.one")
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the call did not reach A's callee")
	}
	stopped := startDrain(t, a, 15*time.Second)
	// The callee reconnecting elsewhere: B.
	calleeB := b.dial(b.rs(), proto.MsgPack)
	eventually(t, 5*time.Second, func() error {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := calleeB.Register(rctx, "com.one", func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{"B"}}, nil
		}, nil)
		if err != nil {
			return fmt.Errorf("REGISTER of com.one on B during A's drain: %v", err)
		}
		return nil
	})
	eventually(t, 5*time.Second, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := callerC.Call(cctx, "com.one", nil, nil, nil)
		if err != nil || len(res.Args) != 1 || res.Args[0] != "B" {
			return fmt.Errorf("a new call of com.one from C during A's drain: %v %v, want B's answer", res, err)
		}
		return nil
	})
	select {
	case o := <-inflight:
		t.Fatalf("the call in flight on A's callee ended before it answered: %v %v", o.res, o.err)
	case err := <-stopped:
		t.Fatalf("A stopped (drain: %v) with a call in flight on its callee", err)
	default:
	}
	open()
	if o := <-inflight; o.err != nil || len(o.res.Args) != 1 || o.res.Args[0] != "A" {
		t.Fatalf("the call in flight on A's callee: %v %v, want A's answer", o.res, o.err)
	}
	waitStopped(t, stopped, "the call ended", "its call's end")
	// B's claim outlived A's leave: in the store, and for a REGISTER on C.
	key := claimKey("realm1", proto.MatchExact, "com.one")
	eventually(t, 10*time.Second, func() error { // the store may elect a leader after A left
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		mine, all, err := claimsHeldBy(gctx, b, b, []string{key})
		if err == nil && (mine != 1 || all != 1) {
			t.Fatalf("the claim of com.one after A stopped: B's %d of %d, want B's", mine, all)
		}
		return err
	})
	calleeC := c.dial(c.ws(), proto.JSON)
	_, err := calleeC.Register(ctx, "com.one", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"C"}}, nil
	}, nil)
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URIProcedureAlreadyExists {
		t.Fatalf("REGISTER of com.one on C after A stopped: %v, want %s (B holds it)", err, proto.URIProcedureAlreadyExists)
	}
	res, err := callerC.Call(ctx, "com.one", nil, nil, nil)
	if err != nil || len(res.Args) != 1 || res.Args[0] != "B" {
		t.Fatalf("com.one from C after A stopped: %v %v, want B's answer", res, err)
	}
}

// TestDrainNotHeldByCallerThatNeverPauses: callers on A that call B's
// callee without a pause during A's drain reach B while a call from
// before the drain holds it, and do not hold the drain up once that call
// has ended: A then refuses their new calls (no_available_callee, "no new
// calls"), and the drain ends with the calls they had in flight, well
// before its deadline. A guard of the drain's second phase (b3245f0): it
// fails (no refusal) with the phase's refusal taken out. Sixteen callers
// each waiting for its answer do not hold even a drain that waits for
// every call to its deadline (its 20 ms count finds a moment with none in
// flight); a caller that keeps calls in flight without a gap would.
func TestDrainNotHeldByCallerThatNeverPauses(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b")
	a, b := ns[0], ns[1]
	ctx := ctxT(t, 60*time.Second)
	calleeA := a.dial(a.ws(), proto.JSON)
	calleeB := b.dial(b.rs(), proto.MsgPack)
	started, open := gatedProc(ctx, t, calleeA, "com.a.slow")
	if _, err := calleeB.Register(ctx, "com.b.quick", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	callerA := a.dial(a.rs(), proto.JSON)
	busy := a.dial(a.ws(), proto.CBOR)
	callUntil(t, callerA, "com.a.slow", nil) // the gate closes
	callUntil(t, busy, "com.b.quick", nil)
	before := goCall(callerA, "com.a.slow")
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the call from before the drain did not reach A's callee")
	}
	// Callers that never pause: each calls again as soon as it has its
	// answer, until the drain has ended.
	var stop atomic.Bool
	var reachedB, refused atomic.Int64
	var other atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := busy.Call(cctx, "com.b.quick", nil, nil, nil)
				cancel()
				var we *client.Error
				switch {
				case err == nil:
					reachedB.Add(1)
				case errors.As(err, &we) && we.URI == proto.URINoAvailableCallee && strings.Contains(fmt.Sprint(we.Args), "no new calls"):
					refused.Add(1)
				default:
					other.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	const deadline = 20 * time.Second
	drained := make(chan error, 1)
	go func() {
		dctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		drained <- a.eng.Drain(dctx)
	}()
	waitDraining(t, a)
	// While the call from before holds the drain, theirs reach B.
	from := reachedB.Load()
	eventually(t, 10*time.Second, func() error {
		if p := other.Load(); p != nil {
			t.Fatalf("a call of a caller that never pauses, during A's drain: %v", *p)
		}
		if n := reachedB.Load() - from; n < 20 {
			return fmt.Errorf("%d calls reached B during A's drain, want 20", n)
		}
		return nil
	})
	select {
	case err := <-drained:
		t.Fatalf("the drain ended (%v) with the call from before it in progress", err)
	default:
	}
	open()
	if o := <-before; o.err != nil {
		t.Fatalf("the call from before the drain: %v", o.err)
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("drain with callers that never pause: %v (reached B %d, refused %d), want nil: their new calls refused, the drain ended with those in flight",
				err, reachedB.Load(), refused.Load())
		}
	case <-time.After(deadline + 5*time.Second):
		t.Fatal("the drain did not return")
	}
	// A takes no new call until its GOODBYEs.
	eventually(t, 10*time.Second, func() error {
		if p := other.Load(); p != nil {
			t.Fatalf("a call of a caller that never pauses, after A's drain: %v", *p)
		}
		if refused.Load() == 0 {
			return errors.New("no new call refused once what held the drain had ended")
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()
	t.Logf("calls reaching B during the drain: %d, refused once the call from before it ended: %d", reachedB.Load(), refused.Load())
}
