package route

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// memMesh links Routers in one test process, the way edge links them over
// NATS, so that route's side of the mesh (mesh*.go) is tested without a
// NATS server: interest-based event delivery (one copy per interested
// node), node-to-node sends, directory updates, gathers and claims, each
// node with one ordered dispatcher goroutine. edge's tests run the same
// scenarios over real embedded NATS servers.
type memMesh struct {
	t      *testing.T
	mu     sync.Mutex
	nodes  []*memNode
	claims map[string]string // realm|match|uri -> owner node name
	// hold, when set, keeps directory updates from being delivered (a
	// partition of the directory); release delivers them.
	hold    bool
	held    []func()
	noClaim bool // claims accepted provisionally (the claim store is unreachable)
	// claimGate, when set, holds every claim's answer until it is closed
	// (a slow claim store).
	claimGate chan struct{}
	// releasedGate, when set, holds every Released's answer until it is
	// closed (a release on its way to a slow claim store).
	releasedGate chan struct{}
}

type memNode struct {
	net  *memMesh
	id   MeshNode
	name string
	e    *env
	q    chan func()
	done chan struct{}
	dead atomic.Bool

	mu   sync.Mutex
	subs map[string]int // realm|match|uri -> count

	gatherErr atomic.Pointer[error] // set: Gather refuses with it (a busy node)
	// gatherBoth, when set, makes Gather end the gather (done, no
	// answers) and then return it as well, against route.Mesh's
	// contract, as edge's did (a timer ended the gather while its query
	// was refused).
	gatherBoth atomic.Pointer[error]
	sendErr    atomic.Pointer[error] // set: Send refuses with it (a full outbound queue)
	// refuseTo, when set (a node's id + 1), makes Send to that node alone
	// refuse (its outbound queue full).
	refuseTo atomic.Uint64
	refused  atomic.Int64 // the sends refused for sendErr
	sent     atomic.Int64 // the sends taken
	// gatherHold, when set, keeps the node's gathers (their queries are
	// not sent) until releaseGathers: a slow gather.
	gatherHold atomic.Bool
	gmu        sync.Mutex
	gheld      []func()
	// gathers counts the node's gathers not yet answered; gathersMax is
	// the most there were at once.
	gathers, gathersMax atomic.Int64
	// queries counts the queries the node's gathers sent (one per other
	// node asked).
	queries atomic.Int64
	// mute, when set, makes the node leave the other nodes' gathers
	// unanswered (reported missing by name, as edge does after its
	// gather timeout); unheard > 0 adds nodes not heard from ("").
	mute    atomic.Bool
	unheard atomic.Int64
	// late, when set, makes the queries this node gets come after their
	// askers' deadlines (a node that was stopped while they waited).
	late atomic.Bool
	// prevRelease, when set, makes the node's results carry only the
	// flags of the previous release (none naming its next untried callee
	// for a rerouted call), as a node of that release sends them; its
	// calls too (no ccRoleReroute), and it reads a call's flags as that
	// release does (it ignores ccRoleReroute). A result for it that
	// release would misread (a refusal for a callee's role as
	// unavailable) fails the test.
	prevRelease atomic.Bool
	// dupKinds, when set, lists the envelope kinds the node sends twice
	// (a faulty link delivering a copy of each).
	dupKinds atomic.Pointer[string]
	// dropKinds, when set, lists the envelope kinds the node's sends
	// lose on their way (taken, never delivered: a link cut and
	// restored within the peer timeout).
	dropKinds atomic.Pointer[string]
	// maxMsg, when set, is the largest message the node's mesh carries
	// (MeshMessageLimit, NATS's max_payload): a larger answer of its
	// is lost, as nats.go refuses it.
	maxMsg atomic.Int64
	// answerTap, when set, sees each answer to this node's gathers as it
	// came over the mesh (what a node of another release would read).
	answerTap atomic.Pointer[func([]byte)]
}

// MaxMessage implements MeshMessageLimit (0: unknown).
func (n *memNode) MaxMessage() int { return int(n.maxMsg.Load()) }

func newMemMesh(t *testing.T, n, shards int, mutate func(*Config)) (*memMesh, []*env) {
	t.Helper()
	mm := &memMesh{t: t, claims: map[string]string{}}
	var envs []*env
	for i := 0; i < n; i++ {
		e := newEnv(t, shards, mutate)
		nd := &memNode{net: mm, id: MeshNode(i + 1), name: fmt.Sprintf("node%c", 'A'+i), e: e,
			q: make(chan func(), 1<<16), done: make(chan struct{}), subs: map[string]int{}}
		go func() {
			defer close(nd.done)
			for f := range nd.q {
				f()
			}
		}()
		t.Cleanup(func() { nd.dead.Store(true); close(nd.q); <-nd.done }) // dead: a late timer (a retained drop, a presence gather) sends it nothing
		if err := e.r.AttachMesh(nd, nd.name, MeshSlot(nd.name)); err != nil {
			t.Fatal(err)
		}
		mm.nodes = append(mm.nodes, nd)
		envs = append(envs, e)
	}
	return mm, envs
}

// dispatch runs f on node n's dispatcher, unless n is dead.
func (n *memNode) dispatch(f func()) {
	if n.dead.Load() {
		return
	}
	n.q <- f
}

// sync waits until every node's dispatcher and shards are idle.
func (mm *memMesh) sync() {
	for k := 0; k < 4; k++ {
		for _, n := range mm.nodes {
			if n.dead.Load() {
				continue
			}
			done := make(chan struct{})
			n.q <- func() { close(done) }
			<-done
			n.e.sync()
		}
	}
}

// kill makes node i vanish: nothing reaches it, and every other node is
// told it is down.
func (mm *memMesh) kill(i int) {
	mm.nodes[i].dead.Store(true)
	for _, n := range mm.nodes {
		if n != mm.nodes[i] {
			id := mm.nodes[i].id
			slot := MeshSlot(mm.nodes[i].name)
			n.dispatch(func() {
				n.e.r.MeshNodeDown(id)
				n.e.r.MeshSessionsGone(id, slot)
			})
		}
	}
	mm.sync()
}

func (mm *memMesh) release() {
	mm.mu.Lock()
	held := mm.held
	mm.held, mm.hold = nil, false
	mm.mu.Unlock()
	for _, f := range held {
		f()
	}
}

func (n *memNode) others() []*memNode {
	var l []*memNode
	for _, o := range n.net.nodes {
		if o != n && !o.dead.Load() {
			l = append(l, o)
		}
	}
	return l
}

func subKey(realm string, match proto.Match, uri string) string {
	return realm + "|" + match.String() + "|" + uri
}

func (n *memNode) Subscribe(realm string, match proto.Match, uri string) {
	n.mu.Lock()
	n.subs[subKey(realm, match, uri)]++
	n.mu.Unlock()
}

func (n *memNode) Unsubscribe(realm string, match proto.Match, uri string) {
	n.mu.Lock()
	k := subKey(realm, match, uri)
	if n.subs[k]--; n.subs[k] <= 0 {
		delete(n.subs, k)
	}
	n.mu.Unlock()
}

// interested reports whether n has a subscription matching topic.
func (n *memNode) interested(realm string, topic []byte) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k := range n.subs {
		parts := strings.SplitN(k, "|", 3)
		if parts[0] != realm {
			continue
		}
		sub := &subscription{uri: parts[2]}
		switch parts[1] {
		case "prefix":
			sub.match = proto.MatchPrefix
		case "wildcard":
			sub.match = proto.MatchWildcard
		}
		if matches(sub, string(topic)) {
			return true
		}
	}
	return false
}

func (n *memNode) Registered(realm string, reg MeshReg) {
	for _, o := range n.others() {
		o := o
		f := func() {
			o.dispatch(func() { o.e.r.MeshUpdate(n.id, n.name, MeshRealmReg{Realm: realm, MeshReg: reg}) })
		}
		n.net.mu.Lock()
		if n.net.hold {
			n.net.held = append(n.net.held, f)
			n.net.mu.Unlock()
			continue
		}
		n.net.mu.Unlock()
		f()
	}
}

func (n *memNode) Claim(realm string, match proto.Match, uri string, done func(error)) {
	k := subKey(realm, match, uri)
	mm := n.net
	mm.mu.Lock()
	var err error
	if mm.noClaim {
		err = ErrMeshProvisional
	} else if owner, ok := mm.claims[k]; ok && owner != n.name {
		err = ErrMeshClaimed
	} else {
		mm.claims[k] = n.name
	}
	gate := mm.claimGate
	mm.mu.Unlock()
	go func() {
		if gate != nil {
			<-gate
		}
		done(err)
	}()
}

func (n *memNode) Release(realm string, match proto.Match, uri string) {
	k := subKey(realm, match, uri)
	n.net.mu.Lock()
	if n.net.claims[k] == n.name {
		delete(n.net.claims, k)
	}
	n.net.mu.Unlock()
}

// Released: the in-memory store takes a release at once (Release),
// unless releasedGate holds the answer.
func (n *memNode) Released(done func()) {
	n.net.mu.Lock()
	gate := n.net.releasedGate
	n.net.mu.Unlock()
	if gate == nil {
		done()
		return
	}
	go func() {
		<-gate
		done()
	}()
}

func (n *memNode) Publish(realm string, topic []byte, env []byte) error {
	for _, o := range n.others() {
		if o.interested(realm, topic) {
			o := o
			b := append([]byte(nil), env...)
			o.dispatch(func() { o.e.r.MeshDeliver(n.id, b) })
		}
	}
	return nil
}

func (n *memNode) Send(node MeshNode, env []byte) error {
	if e := n.sendErr.Load(); e != nil {
		n.refused.Add(1)
		return *e
	}
	if r := n.refuseTo.Load(); r != 0 && MeshNode(r-1) == node {
		return errors.New("outbound queue full")
	}
	n.sent.Add(1)
	if k := n.dropKinds.Load(); k != nil && len(env) > 0 && strings.IndexByte(*k, env[0]) >= 0 {
		return nil
	}
	if n.prevRelease.Load() && len(env) > 0 && env[0] == envResult {
		mr, err := decodeResult(env)
		if err != nil {
			n.net.t.Errorf("node %s sends a result that does not decode: %v", n.name, err)
		}
		env = appendResult(nil, mr.shard, mr.callID, mr.flags&(rsProgress|rsError|rsUnavailable), mr.c.callee, mr.c.uri, mr.c.msg, mr.c)
	}
	if n.prevRelease.Load() {
		env = prevReleaseCall(env)
	}
	for _, o := range n.net.nodes {
		if o.id == node {
			if o.prevRelease.Load() {
				env = prevReleaseCall(env)
				if len(env) > 0 && env[0] == envResult {
					if mr, err := decodeResult(env); err == nil && mr.flags&rsUnavailable != 0 && mr.c.uri != proto.URIUnavailable {
						n.net.t.Errorf("node %s sends node %s of the previous release an unavailable answer with %s, which it would end no_available_callee", n.name, o.name, mr.c.uri)
					}
				}
			}
			b := append([]byte(nil), env...)
			o.dispatch(func() { o.e.r.MeshDeliver(n.id, b) })
			if k := n.dupKinds.Load(); k != nil && len(env) > 0 && strings.IndexByte(*k, env[0]) >= 0 {
				b2 := append([]byte(nil), env...)
				o.dispatch(func() { o.e.r.MeshDeliver(n.id, b2) })
			}
			return nil
		}
	}
	return fmt.Errorf("no node %d", node)
}

// prevReleaseCall returns env with only the call flags of the previous
// release when it is a call envelope (a copy), else env.
func prevReleaseCall(env []byte) []byte {
	if len(env) == 0 || env[0] != envCall {
		return env
	}
	r := rbuf{b: env[1:]}
	r.uv()
	r.uv()
	at := len(env) - len(r.b)
	flags := r.uv()
	if r.err != nil {
		return env
	}
	rest := r.b
	out := append([]byte(nil), env[:at]...)
	out = binary.AppendUvarint(out, flags&(ccDisclose|ccRecvProg|ccProgress))
	return append(out, rest...)
}

func (n *memNode) Gather(env []byte, done func([][]byte, []string)) error {
	if e := n.gatherErr.Load(); e != nil {
		return *e
	}
	if e := n.gatherBoth.Load(); e != nil {
		ended := make(chan struct{})
		go func() { done(nil, nil); close(ended) }()
		<-ended
		return *e
	}
	var others []*memNode
	var missing []string
	for _, o := range n.others() {
		if o.mute.Load() {
			missing = append(missing, o.name)
		} else {
			others = append(others, o)
		}
	}
	if n.unheard.Load() > 0 {
		missing = append(missing, "")
	}
	if len(others) == 0 {
		go done(nil, missing)
		return nil
	}
	if g := n.gathers.Add(1); g > n.gathersMax.Load() {
		n.gathersMax.Store(g) // the dispatchers do not gather: no race to lose
	}
	var mu sync.Mutex
	var answers [][]byte
	left := len(others)
	answer := func(a []byte) {
		mu.Lock()
		if a != nil {
			answers = append(answers, a)
		}
		left--
		last := left == 0
		mu.Unlock()
		if last {
			n.gathers.Add(-1)
			done(answers, missing)
		}
	}
	if n.gatherHold.Load() {
		env := append([]byte(nil), env...) // valid only during the call
		n.gmu.Lock()
		n.gheld = append(n.gheld, func() { n.askAll(others, env, answer) })
		n.gmu.Unlock()
		return nil
	}
	n.askAll(others, env, answer)
	return nil
}

// askAll sends a query to others, each answer to answer.
func (n *memNode) askAll(others []*memNode, env []byte, answer func([]byte)) {
	n.queries.Add(int64(len(others)))
	for _, o := range others {
		o := o
		b := append([]byte(nil), env...)
		var deadline time.Time
		if o.late.Load() {
			deadline = time.Now().Add(-time.Second)
		} else if n.id%2 == 0 {
			deadline = time.Now().Add(time.Minute) // one to spare
		}
		o.dispatch(func() {
			o.e.r.MeshQuery(b, deadline, func(a []byte) {
				if m := o.maxMsg.Load(); m > 0 && int64(len(a)) > m {
					a = nil // refused by the mesh: lost
				}
				if tap := n.answerTap.Load(); tap != nil && a != nil {
					(*tap)(append([]byte(nil), a...))
				}
				answer(a)
			})
		})
	}
}

// releaseGathers sends the gathers gatherHold kept, and no longer keeps
// them.
func (n *memNode) releaseGathers() {
	n.gatherHold.Store(false)
	n.gmu.Lock()
	held := n.gheld
	n.gheld = nil
	n.gmu.Unlock()
	for _, f := range held {
		f()
	}
}

// drainNode returns once node i's dispatcher has handed on what it got
// before.
func (mm *memMesh) drainNode(i int) {
	done := make(chan struct{})
	mm.nodes[i].q <- func() { close(done) }
	<-done
}

// stallShard holds shard i of e until the returned gate is closed.
func (e *env) stallShard(t *testing.T, i int) chan struct{} {
	t.Helper()
	gate := make(chan struct{})
	if err := e.execs[i].Execute(func() { <-gate }); err != nil {
		t.Fatal(err)
	}
	return gate
}
