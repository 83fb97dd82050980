package route

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// joinInternal opens a transport on shard i and joins it with o.
func (e *env) joinInternal(i int, o JoinOptions) (*tc, error) {
	c := e.connectOn(i, proto.JSON)
	var err error
	c.exec.do(func() { err = c.sh.JoinInternal(c.sess, o) })
	return c, err
}

// TestJoinInternal: an in-process session joins under the identity its
// peer vouches for, gets WELCOME with it, and the realm's authorizer
// applies to it unchanged.
func TestJoinInternal(t *testing.T) {
	e := newEnv(t, 2, func(c *Config) {
		c.Realms = []RealmConfig{{
			Name:           "secure",
			Authenticators: []Authenticator{&secretAuth{}},
			Authorizer:     roleAuthz{"user": {"call:com.ok", "register:com.ok"}},
		}}
	})
	callee, err := e.joinInternal(0, JoinOptions{Realm: "secure", Identity: Identity{AuthID: "svc", AuthRole: "user"}, AuthMethod: "gateway", CalleeCancel: true})
	if err != nil {
		t.Fatal(err)
	}
	w := callee.expect(proto.CodeWelcome)
	callee.id = w.ID
	d, _ := proto.DecodeValue(w.Dict)
	dm := d.(map[string]any)
	if dm["authid"] != "svc" || dm["authrole"] != "user" || dm["authmethod"] != "gateway" || dm["authprovider"] != "internal" {
		t.Fatalf("WELCOME %v", dm)
	}
	callee.register("com.ok", nil)

	caller, err := e.joinInternal(1, JoinOptions{Realm: "secure", Identity: Identity{AuthID: "alice", AuthRole: "user"}})
	if err != nil {
		t.Fatal(err)
	}
	caller.id = caller.expect(proto.CodeWelcome).ID
	req := caller.call("com.ok", nil, []any{1}, nil)
	inv := callee.expect(proto.CodeInvocation)
	callee.yield(inv.Request, nil, []any{2})
	if r := caller.expect(proto.CodeResult); r.Request != req || argsOf(r)[0] != int64(2) {
		t.Fatalf("RESULT %s", describe(r))
	}
	denied := caller.call("com.secret", nil, nil, nil)
	caller.expectError(proto.CodeCall, denied, proto.URINotAuthorized)

	// A role the authorizer does not know is denied everything.
	nobody, err := e.joinInternal(0, JoinOptions{Realm: "secure", Identity: Identity{AuthID: "x", AuthRole: "nobody"}})
	if err != nil {
		t.Fatal(err)
	}
	nobody.expect(proto.CodeWelcome)
	nobody.expectError(proto.CodeCall, nobody.call("com.ok", nil, nil, nil), proto.URINotAuthorized)
}

func TestJoinInternalRefusals(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "closed", Authenticators: []Authenticator{&secretAuth{}}}}
	})
	c, err := e.joinInternal(0, JoinOptions{Realm: "nope"})
	if ae, ok := err.(*AuthError); !ok || ae.URI != proto.URINoSuchRealm {
		t.Fatalf("unknown realm: %v", err)
	}
	if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URINoSuchRealm {
		t.Fatalf("ABORT %s", m.URI)
	}
	c, err = e.joinInternal(0, JoinOptions{Realm: "closed", AuthMethod: "anonymous"})
	if ae, ok := err.(*AuthError); !ok || ae.URI != proto.URIAuthenticationDenied {
		t.Fatalf("anonymous on a closed realm: %v", err)
	}
	c.expect(proto.CodeAbort)
	// Joining twice is refused without harm to the first join.
	c, err = e.joinInternal(0, JoinOptions{Realm: "closed", Identity: Identity{AuthID: "a", AuthRole: "r"}})
	if err != nil {
		t.Fatal(err)
	}
	c.expect(proto.CodeWelcome)
	c.exec.do(func() { err = c.sh.JoinInternal(c.sess, JoinOptions{Realm: "closed"}) })
	if err == nil {
		t.Fatal("second JoinInternal accepted")
	}
	c.exec.do(func() {
		if !c.sess.Established() {
			t.Error("the first join was undone")
		}
	})
}

// TestTrafficCounters: the per-shard counters add up to the traffic sent,
// calls in flight rise and fall, and sessions are counted by realm and
// transport.
func TestTrafficCounters(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee := e.join(proto.MsgPack) // shard 0
	caller := e.join(proto.JSON)    // shard 1
	callee.register("com.add", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	before, err := e.r.Traffic(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	var reqs []uint64
	for i := 0; i < n; i++ {
		reqs = append(reqs, caller.call("com.add", nil, []any{i}, nil))
	}
	var invs []uint64
	for i := 0; i < n; i++ {
		invs = append(invs, callee.expect(proto.CodeInvocation).Request)
	}
	e.sync()
	mid, err := e.r.Traffic(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := mid.CallsInFlight - before.CallsInFlight; got != n {
		t.Fatalf("calls in flight %d, want %d", got, n)
	}
	for _, inv := range invs {
		callee.yield(inv, nil, []any{1})
	}
	for range reqs {
		caller.expect(proto.CodeResult)
	}
	e.sync()
	after, err := e.r.Traffic(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.CallsInFlight != before.CallsInFlight {
		t.Fatalf("calls in flight after the answers: %d, want %d", after.CallsInFlight, before.CallsInFlight)
	}
	for _, c := range []struct {
		name string
		got  uint64
		want uint64
	}{
		{"CALL in", after.In[proto.CodeCall] - before.In[proto.CodeCall], n},
		{"YIELD in", after.In[proto.CodeYield] - before.In[proto.CodeYield], n},
		{"INVOCATION out", after.Out[proto.CodeInvocation] - before.Out[proto.CodeInvocation], n},
		{"RESULT out", after.Out[proto.CodeResult] - before.Out[proto.CodeResult], n},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	if after.BytesIn <= before.BytesIn || after.BytesOut <= before.BytesOut {
		t.Errorf("bytes did not grow: %+v → %+v", before, after)
	}
	// A caller leaving with calls in flight takes them out of the count.
	caller.call("com.add", nil, []any{1}, nil)
	callee.expect(proto.CodeInvocation)
	caller.drop()
	callee.expect(proto.CodeInterrupt)
	e.sync()
	if end, _ := e.r.Traffic(ctx); end.CallsInFlight != before.CallsInFlight {
		t.Fatalf("calls in flight after the caller left: %d, want %d", end.CallsInFlight, before.CallsInFlight)
	}

	// One call in 64 is timed.
	lat := func(t Traffic) (n uint64) {
		for _, c := range t.CallLatency {
			n += c
		}
		return n
	}
	base, _ := e.r.Traffic(ctx)
	c2 := e.join(proto.JSON)
	for i := 0; i < 128; i++ {
		req := c2.call("com.add", nil, []any{i}, nil)
		callee.yield(callee.expect(proto.CodeInvocation).Request, nil, []any{1})
		if r := c2.expect(proto.CodeResult); r.Request != req {
			t.Fatalf("RESULT for %d, want %d", r.Request, req)
		}
	}
	e.sync()
	end2, _ := e.r.Traffic(ctx)
	if got := lat(end2) - lat(base); got != 2 {
		t.Fatalf("%d calls timed, want 2 of 128", got)
	}

	got := map[string]map[string]int{}
	for _, rs := range e.r.SessionsByRealm() {
		got[rs.Realm] = rs.ByTransport
	}
	if got["realm1"]["test"] != 2 || len(got["realm2"]) != 0 {
		t.Fatalf("sessions by realm: %v", got)
	}
}
