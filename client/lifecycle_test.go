package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// clientCfg is a Config for the Client tests, on p over RawSocket.
func clientCfg(p *peer) Config {
	return Config{URL: p.url("rs"), Realm: "realm1", DialTimeout: wait, ReplyTimeout: 300 * time.Millisecond}
}

// connectPeer runs Connect against p and plays the first WELCOME.
func connectPeer(t *testing.T, p *peer, cfg Config, rc ReconnectConfig) (*Client, *peerConn) {
	t.Helper()
	a := goDo(func() (*Client, error) { return Connect(context.Background(), cfg, rc) })
	c := p.accept()
	c.welcome(1)
	cl, err := a.wait(t)
	noErr(t, "Connect", err)
	return cl, c
}

// A router that ends every session right after WELCOME (a node draining,
// a session killed by policy) must not be redialled in a tight loop: the
// backoff applies to sessions that do not last, not only to failed dials.
func TestReconnectBacksOffAfterShortSessions(t *testing.T) {
	p := newPeer(t)
	rc := ReconnectConfig{MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second}
	cl, c := connectPeer(t, p, clientCfg(p), rc)
	defer func() {
		done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
		for done.pending(10 * time.Millisecond) {
			drain(p)
		}
		drain(p)
	}()
	c.conn.Close()
	sessions := 0
	deadline := time.After(time.Second)
loop:
	for {
		select {
		case c := <-p.conns:
			sessions++
			c.welcome(uint64(sessions + 1))
			c.conn.Close()
		case <-deadline:
			break loop
		}
	}
	// 200ms, 400ms, (800ms) of backoff fit in a second: at most 4 sessions.
	if sessions > 4 {
		t.Fatalf("%d sessions in 1s with MinBackoff 200ms: the client redials without backing off", sessions)
	}
}

// drain closes the connections p accepted and nobody took.
func drain(p *peer) {
	for {
		select {
		case c := <-p.conns:
			c.conn.Close()
		case <-time.After(50 * time.Millisecond):
			return
		}
	}
}

// Invocation.Next must not outlive the session: when the connection drops
// in the middle of a progressive call invocation, a handler waiting for
// the next chunk gets an error (and Close, which waits for handlers, does
// not hang).
func TestNextFailsWhenSessionEnds(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	nextCtx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // runs before setup's cleanup: unblocks a stuck Next
	errc := make(chan error, 1)
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		_, err := inv.Next(nextCtx) // not the handler's context
		errc <- err
		return nil, err
	}
	register(t, s, c, "com.example.chunks", 10, h, nil)
	invoke(c, 60, 10, []any{1}, map[string]any{"progress": true})
	time.Sleep(50 * time.Millisecond)
	c.conn.Close()
	<-s.Done()
	select {
	case err := <-errc:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("Next = %v, want the session's error", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next still waits for a chunk 2s after the session ended")
	}
}

// Client.Close must not wait for a silent router to answer the
// subscriptions being restored on a new session (10s each).
func TestClientCloseDuringRestore(t *testing.T) {
	p := newPeer(t)
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{MinBackoff: 10 * time.Millisecond})
	restoringSubscription(t, p, cl, c)
	start := time.Now()
	done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
	if done.pending(2 * time.Second) {
		done.wait(t)
		t.Fatalf("Client.Close took %v: it waits for the restore of a subscription", time.Since(start).Round(time.Millisecond))
	}
}

// OnSession is documented to run after registrations are restored: a user
// who takes it as "ready" must find the procedure registered.
func TestOnSessionAfterRegistrationsRestored(t *testing.T) {
	p := newPeer(t)
	var regs atomic.Int32
	onSession := make(chan int32, 4)
	rc := ReconnectConfig{MinBackoff: 10 * time.Millisecond, OnSession: func(s *Session) {
		s.mu.Lock()
		n := int32(len(s.regs))
		s.mu.Unlock()
		onSession <- n
	}}
	cl, c := connectPeer(t, p, clientCfg(p), rc)
	<-onSession
	defer func() {
		done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
		done.wait(t)
	}()
	a := goDo(func() (struct{}, error) {
		return struct{}{}, cl.Register(context.Background(), "com.proc", func(context.Context, *Invocation) (*Result, error) {
			regs.Add(1)
			return nil, nil
		}, nil)
	})
	m := c.expect(proto.CodeRegister)
	c.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: 9})
	_, err := a.wait(t)
	noErr(t, "Register", err)
	c.conn.Close()
	c2 := p.accept()
	c2.welcome(2)
	m = c2.expect(proto.CodeRegister)
	time.Sleep(200 * time.Millisecond) // a router a little slow to answer
	c2.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: 10})
	select {
	case n := <-onSession:
		if n != 1 {
			t.Fatalf("OnSession ran with %d registrations in place, want 1", n)
		}
	case <-time.After(wait):
		t.Fatal("no OnSession")
	}
}

// KeepAlive: 1 (meant as "1 second", read as 1ns) must not crash the
// program: the keepalive ticker needs a positive period.
func TestTinyKeepAlive(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) { cfg.KeepAlive = 1 })
	_ = c
	time.Sleep(20 * time.Millisecond)
	if err := s.Err(); err != nil && !errors.Is(err, ErrKeepAlive) {
		t.Fatalf("session error %v", err)
	}
}

// An INVOCATION that arrives after Close sent GOODBYE starts no handler.
func TestNoHandlerAfterClose(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	started := make(chan struct{}, 1)
	register(t, s, c, "com.example.late", 10, func(context.Context, *Invocation) (*Result, error) {
		started <- struct{}{}
		return &Result{}, nil
	}, nil)
	closed := goDo(func() (struct{}, error) { return struct{}{}, s.Close() })
	c.expect(proto.CodeGoodbye)
	invoke(c, 61, 10, []any{1}, nil)
	time.Sleep(50 * time.Millisecond) // the reader handles it
	c.send(&proto.Message{Type: proto.CodeGoodbye, URI: []byte(proto.CloseGoodbyeAndOut)})
	_, err := closed.wait(t)
	noErr(t, "Close", err)
	select {
	case <-started:
		t.Fatal("a handler started for an INVOCATION received after GOODBYE")
	default:
	}
}

// A hostile or buggy router's INVOCATION timeout beyond time.Duration's
// range (2^63 ns) is no timeout, not an expired context.
func TestHugeInvocationTimeout(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	got := make(chan error, 1)
	register(t, s, c, "com.example.slow", 10, func(ctx context.Context, _ *Invocation) (*Result, error) {
		got <- ctx.Err()
		return &Result{}, nil
	}, nil)
	invoke(c, 62, 10, []any{1}, map[string]any{"timeout": uint64(1) << 62})
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("the handler's context had ended at its start: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no handler")
	}
	c.expect(proto.CodeYield)
}

// A restore the router refuses as busy (wamp.error.unavailable) is tried
// again with backoff on the same session, for registrations and
// subscriptions alike; a refusal that will not pass (not_authorized) is
// not. (Before, only a registration refused as already existing was
// retried: a busy router left the new session without the others.)
func TestRestoreRetriedWhileRouterBusy(t *testing.T) {
	p := newPeer(t)
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	defer func() {
		done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
		for done.pending(10 * time.Millisecond) {
			drain(p)
		}
	}()
	made := func(code, ok proto.Code, do func() error) {
		t.Helper()
		a := goDo(func() (struct{}, error) { return struct{}{}, do() })
		m := c.expect(code)
		c.send(&proto.Message{Type: ok, Request: m.Request, ID: m.Request + 100})
		_, err := a.wait(t)
		noErr(t, code.String(), err)
	}
	ctx := context.Background()
	made(proto.CodeRegister, proto.CodeRegistered, func() error {
		return cl.Register(ctx, "com.proc", func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
	})
	made(proto.CodeSubscribe, proto.CodeSubscribed, func() error { return cl.Subscribe(ctx, "com.busy", func(*Event) {}, nil) })
	made(proto.CodeSubscribe, proto.CodeSubscribed, func() error { return cl.Subscribe(ctx, "com.denied", func(*Event) {}, nil) })
	c.conn.Close()

	c2 := p.accept()
	c2.welcome(2)
	refuse := func(m *proto.Message, uri string) {
		c2.send(&proto.Message{Type: proto.CodeError, ReqType: m.Type, Request: m.Request, URI: []byte(uri)})
	}
	uriOf := func(m *proto.Message) string { return string(m.URI) }
	// The first tries: the router is busy, except that com.denied is not
	// allowed any more.
	for range 3 {
		m := c2.recv()
		switch {
		case m.Type == proto.CodeSubscribe && uriOf(m) == "com.denied":
			refuse(m, proto.URINotAuthorized)
		case m.Type == proto.CodeRegister || m.Type == proto.CodeSubscribe:
			refuse(m, proto.URIUnavailable)
		default:
			t.Fatalf("unexpected %v", m.Type)
		}
	}
	// Tried again: answered this time. com.denied is not among them.
	got := map[string]bool{}
	for range 2 {
		m := c2.recv()
		if uriOf(m) == "com.denied" {
			t.Fatal("a subscription refused as not authorized was tried again")
		}
		got[m.Type.String()+" "+uriOf(m)] = true
		ok := proto.CodeRegistered
		if m.Type == proto.CodeSubscribe {
			ok = proto.CodeSubscribed
		}
		c2.send(&proto.Message{Type: ok, Request: m.Request, ID: m.Request + 200})
	}
	if !got["REGISTER com.proc"] || !got["SUBSCRIBE com.busy"] {
		t.Fatalf("retried: %v", got)
	}
}

// A restore the router is slow to answer is waited for, not sent again:
// the late SUBSCRIBED of a first SUBSCRIBE given up would be undone, and
// its UNSUBSCRIBE would take down the subscription the router gives the
// second with the same id. OnSession does not wait past restoreWait.
func TestRestoreWaitsForSlowRouter(t *testing.T) {
	defer func(d time.Duration) { restoreWait = d }(restoreWait)
	restoreWait = 100 * time.Millisecond
	p := newPeer(t)
	onSession := make(chan struct{}, 4)
	rc := ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		OnSession: func(*Session) { onSession <- struct{}{} }}
	cl, c := connectPeer(t, p, clientCfg(p), rc)
	<-onSession
	defer func() {
		done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
		for done.pending(10 * time.Millisecond) {
			drain(p)
		}
	}()
	events := make(chan *Event, 4)
	a := goDo(func() (struct{}, error) {
		return struct{}{}, cl.Subscribe(context.Background(), "com.topic", func(e *Event) { events <- e }, nil)
	})
	m := c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 5})
	_, err := a.wait(t)
	noErr(t, "Subscribe", err)
	c.conn.Close()

	c2 := p.accept()
	c2.welcome(2)
	m = c2.expect(proto.CodeSubscribe)
	select {
	case <-onSession:
	case <-time.After(wait):
		t.Fatal("OnSession waits for the slow restore")
	}
	c2.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if b, err := c2.readFrame(); err == nil {
		again, _ := proto.Decode(c2.ser, b)
		t.Fatalf("the client sent %v while its SUBSCRIBE was unanswered", again.Type)
	}
	c2.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 8})
	c2.send(event(c2, 8, 1, []any{"e"}, map[string]any{}))
	eq(t, "event", recvEvent(t, events).Args, []any{"e"})
	// Nothing else was sent (an UNSUBSCRIBE would come before this).
	noErr(t, "Publish", cl.Publish(context.Background(), "x", nil, nil, nil))
	c2.expect(proto.CodePublish)
}

// silentListener accepts TCP connections and never answers; it returns
// its address.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// Connect's ctx ends while it dials a router that never answers: the
// error is ctx's (not the cancellation of that dial by Connect itself),
// and tells the last failure to connect when there was one (here: a
// refused connection to the first URL).
func TestConnectDeadline(t *testing.T) {
	silent := "rs://" + silentListener(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	noErr(t, "listen", err)
	refused := "rs://" + dead.Addr().String()
	dead.Close()
	for _, tc := range []struct {
		name string
		urls []string
		last error
	}{
		{"silent", []string{silent}, nil},
		{"refused then silent", []string{refused, silent}, syscall.ECONNREFUSED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := Connect(ctx, Config{Realm: "realm1"}, ReconnectConfig{URLs: tc.urls, MinBackoff: time.Second})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Connect = %v, want an error that is context.DeadlineExceeded", err)
			}
			if tc.last != nil && !errors.Is(err, tc.last) {
				t.Fatalf("Connect = %v, want it to tell the last failure (%v)", err, tc.last)
			}
		})
	}
}

// Subscriptions are restored concurrently, as registrations are: one the
// router is slow to answer does not hold up the others' SUBSCRIBE (sent one
// after another, each waited for up to restoreWait, 100 subscriptions to a
// router slow to answer took 100 × 10 s).
func TestRestoreSubscriptionsConcurrently(t *testing.T) {
	defer func(d time.Duration) { restoreWait = d }(restoreWait)
	restoreWait = 5 * time.Second
	p := newPeer(t)
	onSession := make(chan struct{}, 4)
	rc := ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		OnSession: func(*Session) { onSession <- struct{}{} }}
	cl, c := connectPeer(t, p, clientCfg(p), rc)
	<-onSession
	defer func() {
		done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
		for done.pending(10 * time.Millisecond) {
			drain(p)
		}
	}()
	topics := []string{"com.a", "com.b", "com.c"}
	for i, topic := range topics {
		a := goDo(func() (struct{}, error) {
			return struct{}{}, cl.Subscribe(context.Background(), topic, func(*Event) {}, nil)
		})
		m := c.expect(proto.CodeSubscribe)
		c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: uint64(10 + i)})
		_, err := a.wait(t)
		noErr(t, "Subscribe", err)
	}
	c.conn.Close()

	c2 := p.accept()
	c2.welcome(2)
	// The router answers none until it has all three.
	start := time.Now()
	got := map[string]*proto.Message{}
	for range topics {
		m := c2.expect(proto.CodeSubscribe)
		got[string(m.URI)] = m
	}
	if d := time.Since(start); d >= restoreWait {
		t.Fatalf("the three SUBSCRIBEs took %v: each waited for the one before", d)
	}
	for i, topic := range topics {
		m := got[topic]
		if m == nil {
			t.Fatalf("restored: %v", got)
		}
		c2.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: uint64(20 + i)})
	}
	select {
	case <-onSession:
	case <-time.After(wait):
		t.Fatal("OnSession after all three were answered: not called")
	}
}

// A Client that gives up on a fatal disconnect from its OnDisconnect
// callback: Close returns at once, and the Client's goroutine stops when
// the callback returns (found by review: Close waited for the Client's
// goroutine, which was the one running OnDisconnect, so both waited for
// ever).
func TestClientCloseFromOnDisconnect(t *testing.T) {
	p := newPeer(t)
	var cl *Client
	ready := make(chan struct{})
	returned := make(chan struct{})
	rc := ReconnectConfig{MinBackoff: 10 * time.Millisecond, OnDisconnect: func(err error) {
		<-ready
		cl.Close()
		close(returned)
	}}
	cl, c := connectPeer(t, p, clientCfg(p), rc)
	close(ready)
	c.conn.Close()
	select {
	case <-returned:
	case <-time.After(3 * time.Second):
		t.Fatal("Client.Close called from OnDisconnect has not returned after 3 s (deadlock: it waits for the goroutine running OnDisconnect)")
	}
	select {
	case <-cl.done:
	case <-time.After(wait):
		t.Fatal("the Client's goroutine goes on after Close")
	}
	if _, err := cl.Session(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Session after Close: %v, want ErrClosed", err)
	}
}

// Close from OnSession returns at once too, and the session is then ended
// with GOODBYE; a Close from another goroutine while OnSession runs waits
// for it.
func TestClientCloseFromOnSession(t *testing.T) {
	p := newPeer(t)
	returned := make(chan struct{})
	var cl atomic.Pointer[Client]
	rc := ReconnectConfig{OnSession: func(*Session) {
		for cl.Load() == nil { // Connect returns as OnSession starts
			time.Sleep(time.Millisecond)
		}
		cl.Load().Close()
		close(returned)
	}}
	a := goDo(func() (*Client, error) { return Connect(context.Background(), clientCfg(p), rc) })
	c := p.accept()
	c.welcome(1)
	got, err := a.wait(t)
	noErr(t, "Connect", err)
	cl.Store(got)
	select {
	case <-returned:
	case <-time.After(3 * time.Second):
		t.Fatal("Client.Close called from OnSession has not returned after 3 s")
	}
	c.answerGoodbye() // the session is closed with GOODBYE
	select {
	case <-got.done:
	case <-time.After(wait):
		t.Fatal("the Client's goroutine goes on after Close")
	}

	// From elsewhere, Close waits for the callback.
	release := make(chan struct{})
	in := make(chan struct{})
	rc = ReconnectConfig{OnSession: func(*Session) {
		close(in)
		<-release
	}}
	a = goDo(func() (*Client, error) { return Connect(context.Background(), clientCfg(p), rc) })
	c = p.accept()
	c.welcome(2)
	got, err = a.wait(t)
	noErr(t, "Connect", err)
	<-in
	closed := goDo(func() (struct{}, error) { return struct{}{}, got.Close() })
	if !closed.pending(50 * time.Millisecond) {
		t.Fatal("Close from another goroutine returned while OnSession was running")
	}
	close(release)
	go c.answerGoodbye()
	closed.wait(t)
}

// A Client.Subscribe whose session was lost, and the next one installed,
// while its SUBSCRIBE was out (it got SUBSCRIBED on the session it
// started on) subscribes on the current session too, in the background as
// Register does, and returns within its context. It waited for the
// current session's answer up to restoreWait (10 s), whatever its
// context's deadline.
func TestClientSubscribeOnNewSessionHonoursContext(t *testing.T) {
	defer func(d time.Duration) { restoreWait = d }(restoreWait)
	restoreWait = 3 * time.Second
	p := newPeer(t)
	cl, c := connectPeer(t, p, clientCfg(p), ReconnectConfig{})
	// The next session, made current while the SUBSCRIBE is out (as serve
	// does once the first is lost and the next joined).
	a2 := goDo(func() (*Session, error) { return Dial(context.Background(), clientCfg(p)) })
	c2 := p.accept()
	c2.welcome(2)
	s2, err := a2.wait(t)
	noErr(t, "Dial", err)
	defer func() {
		done := goDo(func() (struct{}, error) { return struct{}{}, errors.Join(cl.Close(), s2.Close()) })
		for done.pending(10 * time.Millisecond) {
			drain(p)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	a := goDo(func() (struct{}, error) { return struct{}{}, cl.Subscribe(ctx, "com.topic", func(*Event) {}, nil) })
	m := c.expect(proto.CodeSubscribe)
	cl.mu.Lock()
	cl.s = s2
	cl.mu.Unlock()
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 5})
	m2 := c2.expect(proto.CodeSubscribe) // the current session's, unanswered for now
	_, err = a.wait(t)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Client.Subscribe returned after %v (%v), its context ended after 200ms: it waited for the current session's SUBSCRIBED", d, err)
	}
	noErr(t, "Subscribe", err)
	c2.send(&proto.Message{Type: proto.CodeSubscribed, Request: m2.Request, ID: 8})
	var cur *Subscription
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		cl.mu.Lock()
		cur = cl.subs[0].cur
		cl.mu.Unlock()
		if cur != nil && cur.s == s2 {
			break
		}
	}
	if cur == nil || cur.s != s2 || !cur.Active() {
		t.Fatalf("the subscription on the current session: %+v", cur)
	}
	// Nothing else was sent on the current session (an UNSUBSCRIBE would
	// come before this).
	noErr(t, "Publish", s2.Publish(context.Background(), "x", nil, nil, nil))
	c2.expect(proto.CodePublish)
}

// restoringSubscription subscribes cl (on c, answered), drops c, and
// leaves the next session's restore of the subscription unanswered.
func restoringSubscription(t *testing.T, p *peer, cl *Client, c *peerConn) {
	t.Helper()
	a := goDo(func() (struct{}, error) {
		return struct{}{}, cl.Subscribe(context.Background(), "com.topic", func(*Event) {}, nil)
	})
	m := c.expect(proto.CodeSubscribe)
	c.send(&proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: 5})
	_, err := a.wait(t)
	noErr(t, "Subscribe", err)
	c.conn.Close()
	c2 := p.accept()
	c2.welcome(2)
	c2.expect(proto.CodeSubscribe) // never answered
}

// No callback starts after Client.Close has returned (found by review):
// OnSession calls Close, which returns at once, after the router dropped
// the session; when OnSession returned, the Client's goroutine found both
// the session ended and the Client closed, and half the time (a select's
// pick) ran OnDisconnect, after Close had returned. 16 rounds.
func TestClientNoOnDisconnectAfterClose(t *testing.T) {
	p := newPeer(t)
	for i := range 16 {
		var cl atomic.Pointer[Client]
		var returned, late atomic.Bool
		conn := make(chan net.Conn, 1)
		rc := ReconnectConfig{MinBackoff: 10 * time.Millisecond,
			OnSession: func(s *Session) {
				(<-conn).Close() // the router drops the session
				<-s.Done()
				for cl.Load() == nil { // Connect returns as OnSession starts
					time.Sleep(time.Millisecond)
				}
				cl.Load().Close()
				returned.Store(true)
			},
			OnDisconnect: func(error) { late.Store(returned.Load()) },
		}
		a := goDo(func() (*Client, error) { return Connect(context.Background(), clientCfg(p), rc) })
		c := p.accept()
		conn <- c.conn
		c.welcome(uint64(i + 1))
		got, err := a.wait(t)
		noErr(t, "Connect", err)
		cl.Store(got)
		select {
		case <-got.done:
		case <-time.After(wait):
			t.Fatal("the Client did not stop after Close from OnSession")
		}
		if late.Load() {
			t.Fatalf("round %d: OnDisconnect ran after Client.Close had returned", i)
		}
	}
}
