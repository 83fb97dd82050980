package route

import (
	"fmt"
	"sync"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// retainedLogPeer is a RetainedPeer (as the HTTP gateway's sessions are)
// that logs, in the order the router does them, the events of one
// subscription and the RetainedSent calls that end each get_retained
// SUBSCRIBE's retained events.
type retainedLogPeer struct {
	*testPeer
	watch uint64 // the subscription logged
	mu    sync.Mutex
	log   []string
}

func (p *retainedLogPeer) Send(b []byte, class Class) error {
	if m, err := proto.Decode(p.ser, b); err == nil && m.Type == proto.CodeEvent {
		p.mu.Lock()
		if m.ID == p.watch {
			p.log = append(p.log, fmt.Sprintf("%v retained=%v", argsOf(m)[0], m.Opt.Bool(proto.KeyRetained, false)))
		}
		p.mu.Unlock()
	}
	return p.testPeer.Send(b, class)
}

func (p *retainedLogPeer) RetainedSent(id uint64) {
	p.mu.Lock()
	if id == p.watch {
		p.log = append(p.log, "end")
	}
	p.mu.Unlock()
}

// busyGathersMesh makes a two-node mesh where node 0 retains v1 on
// com.state and a session of node 1's, logged by a retainedLogPeer, is
// subscribed to it (a stream without retained=true) with its
// maxSessionGathers gathers busy (node 1's held: releaseGathers).
func busyGathersMesh(t *testing.T) (*memMesh, *tc, *retainedLogPeer, uint64) {
	t.Helper()
	mm, es := newMemMesh(t, 2, 1, nil)
	pub := es[0].join(proto.JSON)
	pub.publish("com.state", map[string]any{"retain": true, "acknowledge": true}, []any{"v1"}, nil)
	pub.expect(proto.CodePublished)
	mm.sync()

	e := es[1]
	sh, x := e.r.Shard(0), e.execs[0]
	tp := &testPeer{ser: proto.JSON, in: make(chan *proto.Message, 4096), sh: sh, exec: x, remote: "gateway"}
	p := &retainedLogPeer{testPeer: tp}
	sub := &tc{e: e, t: t, peer: tp, sh: sh, exec: x}
	x.do(func() { sub.sess = sh.Open(p); tp.sess = sub.sess })
	sub.hello("realm1", allFeatures, nil)
	sub.id = sub.expect(proto.CodeWelcome).ID
	id := sub.subscribe("com.state", nil)
	p.mu.Lock()
	p.watch = id
	p.mu.Unlock()
	mm.nodes[1].gatherHold.Store(true)
	for i := range maxSessionGathers {
		sub.subscribe(fmt.Sprintf("com.busy.%d", i), map[string]any{"get_retained": true})
	}
	return mm, sub, p, id
}

// A session subscribed to a topic, its 16 gathers busy (a node slow to
// answer), SUBSCRIBEs get_retained to it twice: the two asks, for a
// subscriber already (no window, the same subscriber), are identical, and
// the queue kept one of them. Each SUBSCRIBE must still get the retained
// event and its end (RetainedSent): the HTTP gateway, whose event streams
// of one principal share a session and its subscription, hands a
// SUBSCRIBE's retained events to the stream that asked, the first of those
// waiting, until RetainedSent. Before, the second SUBSCRIBE got neither:
// its stream waited at the head of the gateway's queue for good, and the
// retained events of the next stream to ask went to it.
func TestMeshRetainedMergedAsksEachAnswered(t *testing.T) {
	mm, sub, p, id := busyGathersMesh(t)
	for range 2 {
		if got := sub.subscribe("com.state", map[string]any{"get_retained": true}); got != id {
			t.Fatalf("SUBSCRIBE again: subscription %d, want %d", got, id)
		}
	}
	var busy, queued int
	sub.exec.do(func() { busy, queued = sub.sess.retains.busy, len(sub.sess.retains.q) })
	if busy != maxSessionGathers || queued != 1 {
		t.Fatalf("%d gathers busy, %d queued; want %d and 1 (the two asks merged)", busy, queued, maxSessionGathers)
	}
	mm.nodes[1].releaseGathers()
	mm.sync()
	eventsOf(sub)
	p.mu.Lock()
	got := fmt.Sprint(p.log)
	p.mu.Unlock()
	if want := fmt.Sprint([]string{"v1 retained=true", "end", "v1 retained=true", "end"}); got != want {
		t.Fatalf("the subscription's retained events and ends: %s; want %s (one each per SUBSCRIBE)", got, want)
	}
}

// Past maxMergedAsks repetitions merged into one queued ask, a repeated
// get_retained SUBSCRIBE is answered at once with this node's retained
// events (none here: v1 is on the other node) and its end, so that an
// answered gather never delivers more than maxMergedAsks+1 times in one
// turn of the loop; every SUBSCRIBE still gets its end.
func TestMeshRetainedMergedAsksBounded(t *testing.T) {
	mm, sub, p, _ := busyGathersMesh(t)
	const extra = 6
	for range maxMergedAsks + 1 + extra {
		sub.subscribe("com.state", map[string]any{"get_retained": true})
	}
	count := func(s string) int {
		p.mu.Lock()
		defer p.mu.Unlock()
		n := 0
		for _, l := range p.log {
			if l == s {
				n++
			}
		}
		return n
	}
	if n := count("end"); n != extra {
		t.Fatalf("before the gather's answer: %d ends, want the %d SUBSCRIBEs past the merge bound answered at once", n, extra)
	}
	mm.nodes[1].releaseGathers()
	mm.sync()
	eventsOf(sub)
	if n, v := count("end"), count("v1 retained=true"); n != maxMergedAsks+1+extra || v != maxMergedAsks+1 {
		t.Fatalf("after it: %d ends and %d retained v1, want %d and %d", n, v, maxMergedAsks+1+extra, maxMergedAsks+1)
	}
}
