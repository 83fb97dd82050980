package route

import (
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A reload re-checked every registration and subscription of every session
// of a shard in one task on the shard's loop (Shard.reauth), with no
// budget: 4 anonymous sessions that each held their 65,536 subscriptions
// (limits.subscriptions, the default) made every reload, even one that
// changed no grant of theirs, hold the loop, and another session's call on
// it took 107-187 ms (found by review). README's walk budgets bound such
// walks for the meta API and get_retained to a few ms per request; a
// reload's walk was bounded by nothing. Now a session whose role's grants
// a reload left as they were is not walked at all, and the others are
// walked in turns of at most recheckTurn entries, other sessions' messages
// handled in between, nothing let through by the old grants meanwhile.
func TestReloadDoesNotStallLoopOnManySubscriptions(t *testing.T) {
	const sessions, perSession = 3, 4096
	build := func(deny ...Permission) RealmConfig {
		z, err := NewRBAC([]Role{{Name: "anonymous", Permissions: append([]Permission{
			{URI: "", Match: proto.MatchPrefix, Call: true, Register: true, Subscribe: true, Publish: true},
			{URI: "com.secret.", Match: proto.MatchPrefix},
			{URI: "com..admin", Match: proto.MatchWildcard},
		}, deny...)}})
		if err != nil {
			t.Fatal(err)
		}
		return RealmConfig{Name: "realm1", Anonymous: true, Authorizer: z}
	}
	e := newEnv(t, 1, func(c *Config) { c.Realms = []RealmConfig{build()} })
	subs := make([]*tc, sessions)
	for s := range subs {
		c := e.join(proto.JSON)
		subs[s] = c
		for i := 0; i < perSession; i += 1024 {
			for j := i; j < i+1024; j++ {
				c.send(&proto.Message{Type: proto.CodeSubscribe, Request: c.nextReq(), Dict: c.opts(nil), URI: []byte("com.app.s" + strconv.Itoa(s) + ".t" + strconv.Itoa(j))})
			}
			for j := i; j < i+1024; j++ {
				if m := c.recv(); m.Type != proto.CodeSubscribed {
					t.Fatalf("got %v %s", m.Type, m.URI)
				}
			}
		}
	}
	// A victim on the same loop.
	v := e.join(proto.JSON)
	v.register("com.app.ping", nil)
	caller := e.join(proto.JSON)
	roundTrip := func() {
		t.Helper()
		req := caller.call("com.app.ping", nil, nil, nil)
		inv := v.expect(proto.CodeInvocation)
		v.yield(inv.Request, nil, nil)
		if m := caller.expect(proto.CodeResult); m.Request != req {
			t.Fatalf("RESULT for %d", m.Request)
		}
	}
	// The shard's turns of re-checking, and the next turn held by the test.
	sh := e.r.shards[0]
	var mu sync.Mutex
	var turns []int // entries checked in each turn
	var left int
	held := make(chan func(), 1)
	e.execs[0].do(func() {
		sh.recheckHook = func(checked, l int) {
			mu.Lock()
			turns = append(turns, checked)
			left = l
			mu.Unlock()
		}
		sh.recheckPost = func(next func()) { held <- next }
	})
	state := func() ([]int, int) {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), turns...), left
	}

	// A routine reload that changes no grant (say, a user added elsewhere):
	// nothing is walked.
	if err := e.r.Reload([]RealmConfig{build()}); err != nil {
		t.Fatal(err)
	}
	roundTrip()
	e.sync()
	if got, _ := state(); len(got) != 0 {
		t.Fatalf("a reload that changed no grant re-checked the sessions in %d turns (%v entries)", len(got), got)
	}

	// A reload that takes away subscribing under com.app.s1. (publishing
	// there stays): every session of the role is re-checked, in turns.
	start := time.Now()
	if err := e.r.Reload([]RealmConfig{build(Permission{URI: "com.app.s1.", Match: proto.MatchPrefix, Publish: true, Call: true})}); err != nil {
		t.Fatal(err)
	}
	var next func()
	select {
	case next = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the re-check's first turn posted no next turn")
	}
	got, l := state()
	if len(got) != 1 || got[0] != recheckTurn || l == 0 {
		t.Fatalf("after the first turn: turns %v, %d sessions left; want one turn of %d entries, sessions left", got, l, recheckTurn)
	}
	// The loop is not held: with the rest of the re-check still to come, the
	// victim's call is answered, a SUBSCRIBE is judged by the new grants,
	// and an event to a subscription the re-check has not come to is
	// withheld by them.
	roundTrip()
	req := caller.nextReq()
	caller.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: caller.opts(nil), URI: []byte("com.app.s1.new")})
	caller.expectError(proto.CodeSubscribe, req, proto.URINotAuthorized)
	pub := caller.publish("com.app.s1.t"+strconv.Itoa(perSession-1), map[string]any{"acknowledge": true}, []any{"leak"}, nil)
	if m := caller.expect(proto.CodePublished); m.Request != pub {
		t.Fatalf("PUBLISHED for %d", m.Request)
	}
	marker := subs[1].nextReq()
	subs[1].send(&proto.Message{Type: proto.CodeSubscribe, Request: marker, Dict: subs[1].opts(nil), URI: []byte("com.app.open")})
	switch m := subs[1].recv(); {
	case m.Type == proto.CodeEvent:
		t.Fatal("an event reached a subscription the reload's grants refuse, before the re-check came to it")
	case m.Type != proto.CodeSubscribed || m.Request != marker:
		t.Fatalf("got %v for %d, want SUBSCRIBED for %d", m.Type, m.Request, marker)
	}
	// The rest of the re-check, one held turn at a time.
	for next != nil {
		e.execs[0].do(next)
		select {
		case next = <-held:
		default:
			next = nil
		}
	}
	got, l = state()
	t.Logf("%d sessions x %d subscriptions: re-checked in %d turns %v in %v", sessions, perSession, len(got), got, time.Since(start))
	if l != 0 || len(got) < sessions*perSession/recheckTurn {
		t.Fatalf("turns %v, %d sessions left", got, l)
	}
	for _, n := range got {
		if n > recheckTurn {
			t.Fatalf("a turn re-checked %d entries, more than %d: %v", n, recheckTurn, got)
		}
	}
	// s1's subscriptions under com.app.s1. were revoked, the others' stay.
	var held0, held1 int
	e.execs[0].do(func() {
		e.r.mu.Lock()
		s0, s1 := e.r.sessions[subs[0].id], e.r.sessions[subs[1].id]
		e.r.mu.Unlock()
		held0, held1 = len(s0.subs), len(s1.subs)
	})
	if held0 != perSession || held1 != 1 {
		t.Fatalf("after the re-check s0 holds %d subscriptions (want %d), s1 %d (want 1, com.app.open)", held0, perSession, held1)
	}
}

// Reload returns once every shard has re-checked its sessions (their
// cached decisions dropped), so that a request handled after it returns
// is judged by the new grants; a shard that does not come to it within
// reloadWait is logged and not waited for. Before, Reload returned at
// once (systemctl reload with it), and a session whose grant it removed
// could still CALL or PUBLISH, by its cached decision, until its loop ran
// the re-check.
func TestReloadWaitsForShards(t *testing.T) {
	defer func(d time.Duration) { reloadWait = d }(reloadWait)
	reloadWait = 400 * time.Millisecond
	logs := &lockedBuf{}
	allow := func(call bool) []RealmConfig {
		z, err := NewRBAC([]Role{{Name: "anonymous", Permissions: []Permission{
			{URI: "", Match: proto.MatchPrefix, Register: true, Subscribe: true, Publish: true, Call: call},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		return []RealmConfig{{Name: "realm1", Anonymous: true, Authorizer: z}}
	}
	e := newEnv(t, 2, func(c *Config) {
		c.Realms = allow(true)
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	callee := e.join(proto.JSON)
	callee.register("com.app.ping", nil)
	caller := e.join(proto.JSON) // on the other shard
	req := caller.call("com.app.ping", nil, nil, nil)
	callee.yield(callee.expect(proto.CodeInvocation).Request, nil, nil)
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("RESULT for %d", m.Request)
	}
	// The caller's shard busy: Reload waits for it.
	// busy holds the caller's shard until the returned func is called
	// (at the latest when the test ends).
	busy := func() func() {
		started, release := make(chan struct{}), make(chan struct{})
		go caller.exec.do(func() { close(started); <-release })
		<-started
		stop := sync.OnceFunc(func() { close(release) })
		t.Cleanup(stop)
		return stop
	}
	release := busy()
	reload := func(realms []RealmConfig) <-chan time.Duration {
		ch := make(chan time.Duration, 1)
		go func() {
			start := time.Now()
			if err := e.r.Reload(realms); err != nil {
				t.Error(err)
			}
			ch <- time.Since(start)
		}()
		return ch
	}
	took := reload(allow(false))
	select {
	case d := <-took:
		t.Fatalf("Reload returned after %v, before the caller's shard re-checked its sessions", d)
	case <-time.After(reloadWait / 4):
	}
	release()
	select {
	case <-took:
	case <-time.After(10 * time.Second):
		t.Fatal("Reload did not return once its shards had run")
	}
	// What it waited for is done: the caller's CALL is refused.
	req = caller.call("com.app.ping", nil, nil, nil)
	caller.expectError(proto.CodeCall, req, proto.URINotAuthorized)
	if strings.Contains(logs.String(), "have not re-checked") {
		t.Fatalf("logged a timeout: %s", logs.String())
	}
	// A shard that does not come to it in reloadWait: logged, not waited
	// for further.
	busy()
	took = reload(allow(true))
	select {
	case d := <-took:
		if d < reloadWait {
			t.Fatalf("Reload returned after %v, with a shard still busy (reloadWait %v)", d, reloadWait)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Reload waits beyond reloadWait for a busy shard")
	}
	if !strings.Contains(logs.String(), "have not re-checked") {
		t.Fatalf("no log line for the shard not waited for: %s", logs.String())
	}
}

// lockedBuf is a log destination safe for concurrent writers.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
