package client

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// closeClient closes cl while the peer's connections are drained.
func closeClient(cl *Client, p *peer) {
	done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
	for done.pending(10 * time.Millisecond) {
		drain(p)
	}
}

// Client.Unregister and Client.Unsubscribe with a context already ended do
// nothing and return its error, as the Session's do: before, they took the
// registration and subscription off the Client's lists and then failed to
// take them off the session (Session.Unregister refuses an ended
// context), so the handlers went on being invoked, and the next
// Unregister/Unsubscribe, with a good context, said ErrNotRegistered /
// ErrNotSubscribed: nothing could take them off any more.
func TestClientRemoveWithEndedContext(t *testing.T) {
	p := newPeer(t)
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{})
	defer closeClient(cl, p)
	ctx := context.Background()
	a := goDo(func() (struct{}, error) {
		return struct{}{}, cl.Register(ctx, "com.proc", func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
	})
	m := c.expect(proto.CodeRegister)
	c.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: 10})
	_, err := a.wait(t)
	noErr(t, "Register", err)
	a = goDo(func() (struct{}, error) { return struct{}{}, cl.Subscribe(ctx, "com.topic", func(*Event) {}, nil) })
	m = c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 20})
	_, err = a.wait(t)
	noErr(t, "Subscribe", err)

	ended, cancel := context.WithCancel(ctx)
	cancel()
	if err := cl.Unregister(ended, "com.proc"); err != context.Canceled {
		t.Errorf("Unregister with an ended context: %v, want context.Canceled", err)
	}
	if err := cl.Unsubscribe(ended, "com.topic"); err != context.Canceled {
		t.Errorf("Unsubscribe with an ended context: %v, want context.Canceled", err)
	}
	// Still registered and subscribed: a second try takes them off.
	a = goDo(func() (struct{}, error) { return struct{}{}, cl.Unregister(ctx, "com.proc") })
	if !a.pending(100 * time.Millisecond) {
		_, err := a.wait(t)
		t.Fatalf("Unregister after one with an ended context: %v without UNREGISTER (the registration stays on the session for good)", err)
	}
	m = c.expect(proto.CodeUnregister)
	eq(t, "unregistered id", m.ID, uint64(10))
	c.send(&proto.Message{Type: proto.CodeUnregistered, Request: m.Request})
	_, err = a.wait(t)
	noErr(t, "Unregister", err)
	a = goDo(func() (struct{}, error) { return struct{}{}, cl.Unsubscribe(ctx, "com.topic") })
	if !a.pending(100 * time.Millisecond) {
		_, err := a.wait(t)
		t.Fatalf("Unsubscribe after one with an ended context: %v without UNSUBSCRIBE (the subscription stays on the session for good)", err)
	}
	m = c.expect(proto.CodeUnsubscribe)
	eq(t, "unsubscribed id", m.ID, uint64(20))
	c.send(&proto.Message{Type: proto.CodeUnsubscribed, Request: m.Request})
	_, err = a.wait(t)
	noErr(t, "Unsubscribe", err)
}

// A subscription and a registration removed (Client.Unsubscribe,
// Client.Unregister) while their restore on a new session is out: the
// router's SUBSCRIBED and REGISTERED, then an EVENT and an INVOCATION
// right behind them, must not reach the handlers: Unsubscribe and
// Unregister have returned.
func TestClientRemovedDuringRestoreNotDelivered(t *testing.T) {
	p := newPeer(t)
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{MinBackoff: 10 * time.Millisecond})
	defer closeClient(cl, p)
	ctx := context.Background()
	var events, invocations atomic.Int32
	a := goDo(func() (struct{}, error) {
		return struct{}{}, cl.Register(ctx, "com.proc", func(context.Context, *Invocation) (*Result, error) {
			invocations.Add(1)
			return nil, nil
		}, nil)
	})
	m := c.expect(proto.CodeRegister)
	c.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: 10})
	_, err := a.wait(t)
	noErr(t, "Register", err)
	a = goDo(func() (struct{}, error) {
		return struct{}{}, cl.Subscribe(ctx, "com.topic", func(*Event) { events.Add(1) }, nil)
	})
	m = c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 20})
	_, err = a.wait(t)
	noErr(t, "Subscribe", err)
	c.conn.Close()

	c2 := p.accept()
	c2.welcome(2)
	var reg, sub *proto.Message
	for range 2 {
		m := c2.recv()
		switch m.Type {
		case proto.CodeRegister:
			reg = m
		case proto.CodeSubscribe:
			sub = m
		default:
			t.Fatalf("restore: got %v", m.Type)
		}
	}
	noErr(t, "Unregister", cl.Unregister(ctx, "com.proc"))
	noErr(t, "Unsubscribe", cl.Unsubscribe(ctx, "com.topic"))
	// The restores' goroutines look at what was removed under the
	// Client's lock once the answers are in: held here, they wait, as a
	// busy machine may make them wait.
	cl.mu.Lock()
	c2.send(&proto.Message{Type: proto.CodeRegistered, Request: reg.Request, ID: 11},
		&proto.Message{Type: proto.CodeSubscribed, Request: sub.Request, ID: 21},
		event(c2, 21, 1, []any{"late"}, map[string]any{}))
	invoke(c2, 5, 11, []any{1}, map[string]any{})
	y := c2.recv()
	time.Sleep(100 * time.Millisecond)
	cl.mu.Unlock()
	if n := invocations.Load(); n != 0 || y.Type == proto.CodeYield {
		t.Errorf("the handler of a registration removed by Client.Unregister ran %d time(s) after Unregister returned (answer %v)", n, y.Type)
	}
	if n := events.Load(); n != 0 {
		t.Errorf("the handler of a subscription removed by Client.Unsubscribe got %d event(s) after Unsubscribe returned", n)
	}
	// The restores are undone.
	got := map[proto.Code]bool{}
	for range 2 {
		m := c2.recv()
		got[m.Type] = true
	}
	if !got[proto.CodeUnregister] || !got[proto.CodeUnsubscribe] {
		t.Errorf("after the restores of removed ones: %v, want UNREGISTER and UNSUBSCRIBE", got)
	}
}

// The event handler of a Client's subscription runs one event at a time,
// as a Session's does, also across sessions: a handler still running on
// the lost session (its dispatcher waits for it) and the next session's
// first event must not run it twice at once.
func TestClientEventHandlerNotConcurrentAcrossSessions(t *testing.T) {
	p := newPeer(t)
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{MinBackoff: 10 * time.Millisecond})
	defer closeClient(cl, p)
	release := make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	var running, most, calls atomic.Int32
	started := make(chan struct{}, 4)
	h := func(*Event) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		if calls.Add(1) == 1 {
			started <- struct{}{}
			<-release
		}
	}
	a := goDo(func() (struct{}, error) { return struct{}{}, cl.Subscribe(context.Background(), "com.topic", h, nil) })
	m := c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 20})
	_, err := a.wait(t)
	noErr(t, "Subscribe", err)
	c.send(event(c, 20, 1, []any{"first"}, map[string]any{}))
	<-started
	c.conn.Close()

	c2 := p.accept()
	c2.welcome(2)
	m = c2.expect(proto.CodeSubscribe)
	c2.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 21},
		event(c2, 21, 2, []any{"second"}, map[string]any{}))
	time.Sleep(200 * time.Millisecond)
	if n := most.Load(); n > 1 {
		t.Errorf("the event handler ran %d times at once: the next session's event while the lost session's was still handled", n)
	}
	close(release)
	deadline := time.Now().Add(wait)
	for calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	eq(t, "handler calls", calls.Load(), int32(2))
}

// Client.Close called from Config.OnChallenge, which a Client runs on its
// own goroutine when it joins again (a credential found revoked, say: the
// application gives up), returns at once, as from OnSession and
// OnDisconnect, and the Client stops.
func TestClientCloseFromOnChallenge(t *testing.T) {
	p := newPeer(t)
	var clp atomic.Pointer[Client]
	var challenges atomic.Int32
	closed := make(chan struct{})
	cfg := clientCfg(p)
	cfg.AuthMethods = []string{"ticket"}
	cfg.OnChallenge = func(string, map[string]any) (string, map[string]any, error) {
		if challenges.Add(1) == 2 {
			clp.Load().Close()
			close(closed)
		}
		return "secret", nil, nil
	}
	join := func(c *peerConn, id uint64) {
		c.expect(proto.CodeHello)
		c.send(&proto.Message{Type: proto.CodeChallenge, URI: []byte("ticket"), Dict: c.raw(map[string]any{})})
		c.expect(proto.CodeAuthenticate)
		c.send(&proto.Message{Type: proto.CodeWelcome, ID: id, Dict: c.raw(map[string]any{})})
	}
	a := goDo(func() (*Client, error) {
		return Connect(context.Background(), cfg, ReconnectConfig{MinBackoff: 10 * time.Millisecond})
	})
	c := p.accept()
	join(c, 1)
	cl, err := a.wait(t)
	noErr(t, "Connect", err)
	clp.Store(cl)
	c.conn.Close()
	c2 := p.accept()
	c2.expect(proto.CodeHello)
	c2.send(&proto.Message{Type: proto.CodeChallenge, URI: []byte("ticket"), Dict: c2.raw(map[string]any{})})
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Client.Close called from OnChallenge did not return: it waits for the Client's goroutine, which runs OnChallenge")
	}
	select {
	case <-cl.done:
	case <-time.After(wait):
		t.Fatal("the Client did not stop after Close from OnChallenge")
	}
	closeClient(cl, p)
}

// Client.Close while a restore is unanswered: OnSession is not called
// with the session being closed (Close has been called: the application
// asked for no more sessions).
func TestClientNoOnSessionAfterClose(t *testing.T) {
	p := newPeer(t)
	var after atomic.Bool
	var closing atomic.Bool
	rc := ReconnectConfig{MinBackoff: 10 * time.Millisecond, OnSession: func(*Session) {
		if closing.Load() {
			after.Store(true)
		}
	}}
	cl, c := connectPeer(t, p, clientCfg(p), rc)
	restoringSubscription(t, p, cl, c)
	closing.Store(true)
	closeClient(cl, p)
	if after.Load() {
		t.Error("OnSession was called after Client.Close, with the session Close was ending")
	}
}

// Client.Unregister of a procedure registered with two match policies,
// whose context ends while the first UNREGISTER is unanswered, still
// sends the second (found by review: the undos ran one after the other
// within ctx, so the second was never sent: the registration stayed on
// the session, its handler refusing, and Client.Unregister said
// ErrNotRegistered from then on). The same for Client.Unsubscribe.
func TestClientRemoveAllWhenContextEnds(t *testing.T) {
	p := newPeer(t)
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{})
	defer closeClient(cl, p)
	ctx := context.Background()
	h := func(context.Context, *Invocation) (*Result, error) { return nil, nil }
	for i, match := range []string{"exact", "prefix"} {
		a := goDo(func() (struct{}, error) {
			return struct{}{}, cl.Register(ctx, "com.x", h, &RegisterOptions{Match: match})
		})
		m := c.expect(proto.CodeRegister)
		c.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: uint64(10 + i)})
		_, err := a.wait(t)
		noErr(t, "Register "+match, err)
		a = goDo(func() (struct{}, error) {
			return struct{}{}, cl.Subscribe(ctx, "com.x", func(*Event) {}, &SubscribeOptions{Match: match})
		})
		m = c.expect(proto.CodeSubscribe)
		c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: uint64(20 + i)})
		_, err = a.wait(t)
		noErr(t, "Subscribe "+match, err)
	}
	for _, tc := range []struct {
		what   string
		remove func(context.Context) error
		code   proto.Code
		ids    []uint64
		gone   error
	}{
		{"Unregister", func(ctx context.Context) error { return cl.Unregister(ctx, "com.x") }, proto.CodeUnregister, []uint64{10, 11}, ErrNotRegistered},
		{"Unsubscribe", func(ctx context.Context) error { return cl.Unsubscribe(ctx, "com.x") }, proto.CodeUnsubscribe, []uint64{20, 21}, ErrNotSubscribed},
	} {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := tc.remove(short) // the router answers none
		cancel()
		if err != context.DeadlineExceeded {
			t.Fatalf("%s with no answer: %v, want context.DeadlineExceeded", tc.what, err)
		}
		noErr(t, "Publish", cl.Publish(ctx, "marker", nil, nil, nil))
		var got []uint64
		for m := c.recv(); m.Type != proto.CodePublish; m = c.recv() {
			if m.Type != tc.code {
				t.Fatalf("after %s: got %v", tc.what, m.Type)
			}
			got = append(got, m.ID)
		}
		eq(t, tc.what+" sent for", got, tc.ids)
		if err := tc.remove(ctx); err != tc.gone {
			t.Fatalf("%s again: %v, want %v", tc.what, err, tc.gone)
		}
	}
}

// A lost session's event handler that calls into the next session while
// the next session's event queue is full does not deadlock (found by
// review: the next session's dispatcher waited for the lost session's
// handler, its full queue stopped its reader, and the handler's Call
// waited for a RESULT that reader never read). Event queue 4: the
// handler, held on the first session, calls once the next session has
// been sent 6 events; the RESULT comes behind them.
func TestClientLostHandlerCallsNextSessionWithFullQueue(t *testing.T) {
	p := newPeer(t)
	cfg := clientCfg(p)
	cfg.EventQueue = 4
	cl, c := connectPeer(t, p, cfg, ReconnectConfig{MinBackoff: 10 * time.Millisecond})
	defer closeClient(cl, p)
	started := make(chan struct{})
	release := make(chan struct{})
	called := make(chan error, 1)
	var calls atomic.Int32
	h := func(*Event) {
		if calls.Add(1) != 1 {
			return
		}
		close(started)
		<-release
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := cl.Call(ctx, "com.next", nil, nil, nil)
		called <- err
	}
	a := goDo(func() (struct{}, error) { return struct{}{}, cl.Subscribe(context.Background(), "com.topic", h, nil) })
	m := c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 20})
	_, err := a.wait(t)
	noErr(t, "Subscribe", err)
	c.send(event(c, 20, 1, []any{0}, map[string]any{}))
	<-started
	c.conn.Close()

	c2 := p.accept()
	c2.welcome(2)
	m = c2.expect(proto.CodeSubscribe)
	c2.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 21})
	for i := range 6 { // one taken by the dispatcher, 4 queued, one the reader holds
		c2.send(event(c2, 21, uint64(2+i), []any{i + 1}, map[string]any{}))
	}
	close(release)
	call := c2.expect(proto.CodeCall)
	c2.send(&proto.Message{Type: proto.CodeResult, Request: call.Request})
	select {
	case err := <-called:
		noErr(t, "the lost session's handler's Call on the next session", err)
	case <-time.After(wait):
		t.Fatal("the handler's Call did not return")
	}
	deadline := time.Now().Add(wait)
	for calls.Load() < 7 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	eq(t, "handler calls", calls.Load(), int32(7))
}
