package route

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The in-memory harness: each shard runs on its own goroutine (the
// executor), sessions talk through testPeer, and tests drive them with tc,
// a minimal scripted client that encodes and decodes real WAMP bytes.

type goExec struct {
	ch   chan func()
	quit chan struct{}
	done chan struct{}
}

func newGoExec() *goExec {
	e := &goExec{ch: make(chan func(), 1<<14), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(e.done)
		for {
			select {
			case f := <-e.ch:
				f()
			case <-e.quit:
				return
			}
		}
	}()
	return e
}

var errStopped = errors.New("executor stopped")

func (e *goExec) Execute(f func()) error {
	// A stopped executor refuses at once: the select below would pick the
	// send half of the time while the channel has room.
	select {
	case <-e.quit:
		return errStopped
	default:
	}
	select {
	case e.ch <- f:
		return nil
	case <-e.quit:
		return errStopped
	}
}

// do runs f on the executor and waits for it.
func (e *goExec) do(f func()) {
	done := make(chan struct{})
	if e.Execute(func() { f(); close(done) }) != nil {
		return
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		// A deadlock detector: a loop with a large backlog to work
		// through under -race, on a machine busy with a CI run's other
		// packages, took more than the 5 s this was
		// (TestMeshCallsForStalledShardBounded).
		panic("executor stuck")
	}
}

func (e *goExec) stop() { close(e.quit); <-e.done }

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

type env struct {
	t     *testing.T
	r     *Router
	execs []*goExec
	clock *fakeClock
	next  int
	conns int
}

func newEnv(t *testing.T, shards int, mutate func(*Config)) *env {
	t.Helper()
	clk := &fakeClock{}
	clk.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	cfg := Config{
		Realms: []RealmConfig{{Name: "realm1"}, {Name: "realm2"}, {Name: "trusted", Authenticators: []Authenticator{trustAuth{}}}},
		Shards: shards,
		Now:    clk.now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),

		manualTimers: true, // the fake clock is advanced by env.advance
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, r: r, clock: clk}
	for i := 0; i < shards; i++ {
		x := newGoExec()
		e.execs = append(e.execs, x)
		r.Shard(i).Start(x)
	}
	t.Cleanup(func() {
		r.Close()
		for _, x := range e.execs {
			x.stop()
		}
	})
	return e
}

// advance moves the fake clock and runs due timers on every shard.
func (e *env) advance(d time.Duration) {
	e.clock.add(d)
	e.r.Tick(time.Second)
	e.sync()
}

// advanceUntil advances the clock in steps of d until c receives a message
// (timers may be armed by work still running on the worker pool).
func (e *env) advanceUntil(c *tc, d time.Duration) *proto.Message {
	e.t.Helper()
	for i := 0; i < 100; i++ {
		e.advance(d)
		select {
		case m := <-c.peer.in:
			return m
		case <-time.After(10 * time.Millisecond):
		}
	}
	e.t.Fatal("no message after advancing the clock")
	return nil
}

// sync waits until every shard has run what was queued before.
func (e *env) sync() {
	for k := 0; k < 3; k++ {
		for _, x := range e.execs {
			x.do(func() {})
		}
	}
}

type testPeer struct {
	ser    proto.Serializer
	in     chan *proto.Message
	closed atomic.Bool
	sh     *Shard
	exec   *goExec
	sess   *Session
	// behaviour knobs
	remote  string      // RemoteAddr to report (default "test")
	slow    atomic.Bool // refuse events and invocations as if over the high-water mark
	maxLen  atomic.Int64
	dropped atomic.Int64

	// backlog, when set, is the peer's high-water mark in messages: it
	// refuses invocations while the peer has that many messages unread,
	// as a transport does past its mark, and tells the dealer its
	// backlog (Backlog: the messages unread, and the mark), as loop's
	// connections do in bytes.
	backlog atomic.Int64
	// stalled: the peer's backlog is past its mark (Backlog says so),
	// and Send refuses events and invocations as slow does.
	stalled atomic.Bool
	tooBig  atomic.Int64 // messages refused as longer than maxLen
}

// MaxMessage implements LimitPeer: maxLen.
func (p *testPeer) MaxMessage() int { return int(p.maxLen.Load()) }

// Backlog implements BacklogPeer: nothing to tell while the backlog knob
// is unset.
func (p *testPeer) Backlog() (queued, high int) {
	if p.stalled.Load() {
		return 2, 1
	}
	return len(p.in), int(p.backlog.Load())
}

func (p *testPeer) Serializer() proto.Serializer { return p.ser }
func (p *testPeer) Transport() TransportInfo {
	remote := p.remote
	if remote == "" {
		remote = "test"
	}
	return TransportInfo{Type: "test", Protocol: "wamp.2." + p.ser.String(), RemoteAddr: remote}
}

func (p *testPeer) Send(b []byte, class Class) error {
	if p.closed.Load() {
		return ErrPeerClosed
	}
	if n := p.maxLen.Load(); n > 0 && int64(len(b)) > n {
		p.tooBig.Add(1)
		return ErrPeerTooBig
	}
	if n := p.backlog.Load(); n > 0 && class == ClassInvocation && int64(len(p.in)) >= n {
		return ErrPeerBusy
	}
	if p.slow.Load() || p.stalled.Load() {
		switch class {
		case ClassEvent:
			p.dropped.Add(1)
			return ErrPeerSlow
		case ClassInvocation:
			return ErrPeerBusy
		}
	}
	m, err := proto.Decode(p.ser, b)
	if err != nil {
		panic(fmt.Sprintf("router sent undecodable %s bytes: %v: %q", p.ser, err, b))
	}
	select {
	case p.in <- m.Clone():
	default:
		panic("test peer inbox full")
	}
	return nil
}

// Close emulates a transport: it closes, then reports back asynchronously.
func (p *testPeer) Close() {
	if p.closed.Swap(true) {
		return
	}
	go p.exec.Execute(func() { p.sh.Detach(p.sess) })
}

// tc is a scripted test client.
type tc struct {
	e    *env
	t    *testing.T
	peer *testPeer
	sh   *Shard
	exec *goExec
	sess *Session
	id   uint64
	req  uint64
	enc  proto.Encoder
}

// connect opens a transport on the next shard (round robin).
func (e *env) connect(ser proto.Serializer) *tc {
	i := e.next % len(e.execs)
	e.next++
	return e.connectOn(i, ser)
}

func (e *env) connectOn(i int, ser proto.Serializer) *tc {
	e.conns++
	return e.connectFrom(i, ser, fmt.Sprintf("test-%d", e.conns))
}

// connectFrom opens a transport that reports the given remote address.
func (e *env) connectFrom(i int, ser proto.Serializer, remote string) *tc {
	sh, x := e.r.Shard(i), e.execs[i]
	p := &testPeer{ser: ser, in: make(chan *proto.Message, 4096), sh: sh, exec: x, remote: remote}
	c := &tc{e: e, t: e.t, peer: p, sh: sh, exec: x}
	x.do(func() { c.sess = sh.Open(p); p.sess = c.sess })
	return c
}

var allFeatures = map[string]any{
	"caller": map[string]any{"features": map[string]any{
		"progressive_call_results": true, "progressive_call_invocations": true, "call_canceling": true, "call_timeout": true, "caller_identification": true}},
	"callee": map[string]any{"features": map[string]any{
		"progressive_call_results": true, "progressive_call_invocations": true, "call_canceling": true, "call_timeout": true,
		"caller_identification": true, "pattern_based_registration": true, "shared_registration": true}},
	"publisher":  map[string]any{"features": map[string]any{"publisher_exclusion": true, "publisher_identification": true, "subscriber_blackwhite_listing": true}},
	"subscriber": map[string]any{"features": map[string]any{"pattern_based_subscription": true, "publisher_identification": true}},
}

// join connects and joins realm1 anonymously with every client feature.
func (e *env) join(ser proto.Serializer) *tc {
	c := e.connect(ser)
	c.hello("realm1", allFeatures, nil)
	w := c.expect(proto.CodeWelcome)
	c.id = w.ID
	return c
}

// trustAuth, the authmethod of realm "trusted", authenticates a session as
// the authid its HELLO names, with role "user", without a challenge. Tests
// use it for sessions with chosen authids: anonymous sessions get an authid
// the router assigns.
type trustAuth struct{}

func (trustAuth) Method() string { return "x-trust" }
func (trustAuth) Challenge(req *AuthRequest) (map[string]any, any, *Identity, error) {
	return nil, nil, &Identity{AuthID: req.AuthID, AuthRole: "user"}, nil
}
func (trustAuth) Authenticate(*AuthRequest, any, string, map[string]any) (*Identity, error) {
	return nil, failAuth()
}

// joinAs joins realm "trusted" as authid (role "user").
func (e *env) joinAs(ser proto.Serializer, authid string) *tc {
	c := e.connect(ser)
	c.hello("trusted", allFeatures, map[string]any{"authmethods": []any{"x-trust"}, "authid": authid})
	c.id = c.expect(proto.CodeWelcome).ID
	return c
}

func (c *tc) hello(realm string, roles map[string]any, details map[string]any) {
	d := map[string]any{"roles": roles}
	for k, v := range details {
		d[k] = v
	}
	raw, err := proto.EncodeValue(c.peer.ser, d)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(&proto.Message{Type: proto.CodeHello, URI: []byte(realm), Dict: raw})
}

// send encodes m in the client's serializer and feeds it to the router.
func (c *tc) send(m *proto.Message) {
	c.t.Helper()
	b, err := c.enc.Append(nil, c.peer.ser, m)
	if err != nil {
		c.t.Fatalf("encode %v: %v", m.Type, err)
	}
	c.sendBytes(b)
}

func (c *tc) sendBytes(b []byte) {
	c.exec.do(func() { c.sh.Receive(c.sess, b) })
}

// sendAsync queues m for c's shard without waiting for it to run.
func (c *tc) sendAsync(m *proto.Message) {
	c.t.Helper()
	b, err := c.enc.Append(nil, c.peer.ser, m)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.exec.Execute(func() { c.sh.Receive(c.sess, b) }); err != nil {
		c.t.Fatal(err)
	}
}

func (c *tc) nextReq() uint64 { c.req++; return c.req }

// recv waits for the next message.
func (c *tc) recv() *proto.Message {
	c.t.Helper()
	select {
	case m := <-c.peer.in:
		return m
	case <-time.After(5 * time.Second):
		c.t.Fatalf("session %d: no message within 5s", c.id)
		return nil
	}
}

// expect waits for the next message and checks its type.
func (c *tc) expect(code proto.Code) *proto.Message {
	c.t.Helper()
	m := c.recv()
	if m.Type != code {
		c.t.Fatalf("session %d: got %v %s, want %v", c.id, m.Type, describe(m), code)
	}
	return m
}

// expectError waits for an ERROR with the given URI.
func (c *tc) expectError(reqType proto.Code, req uint64, uri string) *proto.Message {
	c.t.Helper()
	m := c.expect(proto.CodeError)
	if m.ReqType != reqType || m.Request != req || string(m.URI) != uri {
		c.t.Fatalf("got ERROR %v %d %s %s, want %v %d %s", m.ReqType, m.Request, m.URI, argsOf(m), reqType, req, uri)
	}
	return m
}

// quiet checks that nothing arrives for a short while.
func (c *tc) quiet() {
	c.t.Helper()
	c.e.sync()
	select {
	case m := <-c.peer.in:
		c.t.Fatalf("session %d: unexpected %v %s", c.id, m.Type, describe(m))
	case <-time.After(20 * time.Millisecond):
	}
}

func describe(m *proto.Message) string {
	return fmt.Sprintf("req=%d id=%d uri=%q args=%v", m.Request, m.ID, m.URI, argsOf(m))
}

func argsOf(m *proto.Message) []any {
	if !m.Args.Present() {
		return nil
	}
	v, err := proto.DecodeValue(m.Args)
	if err != nil {
		return []any{"<" + err.Error() + ">"}
	}
	l, _ := v.([]any)
	return l
}

func kwargsOf(m *proto.Message) map[string]any {
	if !m.Kwargs.Present() {
		return nil
	}
	v, _ := proto.DecodeValue(m.Kwargs)
	mm, _ := v.(map[string]any)
	return mm
}

func raw(t *testing.T, ser proto.Serializer, v any) proto.Raw {
	t.Helper()
	r, err := proto.EncodeValue(ser, v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// opts builds an options dict.
func (c *tc) opts(v map[string]any) proto.Raw {
	if v == nil {
		v = map[string]any{}
	}
	return raw(c.t, c.peer.ser, v)
}

func (c *tc) register(uri string, o map[string]any) uint64 {
	c.t.Helper()
	req := c.nextReq()
	c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(o), URI: []byte(uri)})
	m := c.expect(proto.CodeRegistered)
	if m.Request != req {
		c.t.Fatalf("REGISTERED for %d, want %d", m.Request, req)
	}
	return m.ID
}

func (c *tc) subscribe(uri string, o map[string]any) uint64 {
	c.t.Helper()
	req := c.nextReq()
	c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: c.opts(o), URI: []byte(uri)})
	m := c.expect(proto.CodeSubscribed)
	if m.Request != req {
		c.t.Fatalf("SUBSCRIBED for %d, want %d", m.Request, req)
	}
	return m.ID
}

// call sends a CALL and returns its request id.
func (c *tc) call(uri string, o map[string]any, args []any, kwargs map[string]any) uint64 {
	req := c.nextReq()
	m := &proto.Message{Type: proto.CodeCall, Request: req, Dict: c.opts(o), URI: []byte(uri)}
	if args != nil {
		m.Args = raw(c.t, c.peer.ser, args)
	}
	if kwargs != nil {
		m.Kwargs = raw(c.t, c.peer.ser, kwargs)
	}
	c.send(m)
	return req
}

func (c *tc) publish(uri string, o map[string]any, args []any, kwargs map[string]any) uint64 {
	req := c.nextReq()
	m := &proto.Message{Type: proto.CodePublish, Request: req, Dict: c.opts(o), URI: []byte(uri)}
	if args != nil {
		m.Args = raw(c.t, c.peer.ser, args)
	}
	if kwargs != nil {
		m.Kwargs = raw(c.t, c.peer.ser, kwargs)
	}
	c.send(m)
	return req
}

// callChunk sends one chunk of a progressive call invocation (WAMP
// §Progressive Call Invocations): a CALL with request id req, progress set
// on every chunk but the last, and [chunk] as Arguments.
func (c *tc) callChunk(req uint64, uri string, progress bool, chunk int) {
	c.t.Helper()
	o := map[string]any{}
	if progress {
		o["progress"] = true
	}
	c.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: c.opts(o), URI: []byte(uri), Args: raw(c.t, c.peer.ser, []any{chunk})})
}

func (c *tc) yield(inv uint64, o map[string]any, args []any) {
	m := &proto.Message{Type: proto.CodeYield, Request: inv, Dict: c.opts(o)}
	if args != nil {
		m.Args = raw(c.t, c.peer.ser, args)
	}
	c.send(m)
}

func (c *tc) goodbye() {
	c.send(&proto.Message{Type: proto.CodeGoodbye, Dict: c.opts(nil), URI: []byte(proto.CloseCloseRealm)})
	m := c.expect(proto.CodeGoodbye)
	if string(m.URI) != proto.CloseGoodbyeAndOut {
		c.t.Fatalf("GOODBYE reply reason %s", m.URI)
	}
}

// drop closes the transport without GOODBYE, like a vanished peer.
func (c *tc) drop() {
	c.peer.closed.Store(true)
	c.exec.do(func() { c.sh.Detach(c.sess) })
}

var sers = []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR}
