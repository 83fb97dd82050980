package edge

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

var errNotYet = errors.New("not yet")

// leaveLog counts the wamp.session.on_leave a subscriber got, by session.
type leaveLog struct {
	mu sync.Mutex
	n  map[uint64]int
}

func (l *leaveLog) on(e *client.Event) {
	if len(e.Args) != 3 {
		return
	}
	id, _ := e.Args[0].(uint64)
	if v, ok := e.Args[0].(int64); ok {
		id = uint64(v)
	}
	l.mu.Lock()
	l.n[id]++
	l.mu.Unlock()
}

func (l *leaveLog) count(id uint64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[id]
}

func (l *leaveLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := 0
	for _, k := range l.n {
		t += k
	}
	return t
}

// tracked waits until tn keeps n of the other nodes' sessions for their
// on_leave.
func tracked(t *testing.T, tn *tnode, n int) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		if got := tn.r.MeshPresence("realm1"); got != n {
			return fmt.Errorf("%s keeps %d sessions of the other nodes, want %d", tn.name, got, n)
		}
		return nil
	})
}

// TestOnLeaveOfAKilledNodesSessions: node a dies without a word (its NATS
// connection cut: no goodbye, no on_leave; the others find it silent for
// peer_timeout). Subscribers of wamp.session.on_leave on b and c, which
// subscribed after a's first sessions joined, must each get the on_leave
// of every session a still had, once, within the peer timeout (and the
// check of the other nodes), and not that of the session that had closed
// before (whose own on_leave they got).
func TestOnLeaveOfAKilledNodesSessions(t *testing.T) {
	t.Parallel()
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat = 100 * time.Millisecond
		o.PeerTimeout = time.Second
	}, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxT(t, 20*time.Second)
	var sess []*client.Session
	for i := 0; i < 3; i++ {
		sess = append(sess, a.dial(a.ws(), proto.JSON))
	}
	logs := []*leaveLog{{n: map[uint64]int{}}, {n: map[uint64]int{}}}
	for i, tn := range []*tnode{b, c} {
		s := tn.dial(tn.ws(), proto.MsgPack)
		if _, err := s.Subscribe(ctx, "wamp.session.on_leave", logs[i].on, nil); err != nil {
			t.Fatal(err)
		}
	}
	sess = append(sess, a.dial(a.ws(), proto.JSON)) // after the subscribers: gathered or from its on_join
	// Kept once gathered: a's 4, and the other subscriber. The gather
	// follows the mesh interest in on_leave, so the first on_leave
	// reaches them.
	for _, tn := range []*tnode{b, c} {
		tracked(t, tn, 5)
	}
	first := sess[0].ID()
	sess[0].Close()
	eventually(t, 5*time.Second, func() error {
		for _, l := range logs {
			if l.count(first) != 1 {
				return errNotYet
			}
		}
		return nil
	})
	for _, tn := range []*tnode{b, c} {
		tracked(t, tn, 4)
	}

	a.n.nc.Close() // killed
	start := time.Now()
	eventually(t, 5*time.Second, func() error {
		for _, l := range logs {
			if l.total() < 4 {
				return errNotYet
			}
		}
		return nil
	})
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond) // any copy
	for i, l := range logs {
		for _, s := range sess {
			if k := l.count(s.ID()); k != 1 {
				t.Fatalf("subscriber on %s: on_leave of a's session %d %d times, want once (%v)", []string{"b", "c"}[i], s.ID(), k, l.n)
			}
		}
		if l.total() != 4 {
			t.Fatalf("subscriber on %s: %d on_leave, want 4 (%v)", []string{"b", "c"}[i], l.total(), l.n)
		}
	}
	if took > 2*time.Second {
		t.Fatalf("on_leave of the killed node's sessions took %v (peer_timeout 1s)", took)
	}
	t.Logf("on_leave of a's 3 sessions on b and c %v after the kill", took.Round(time.Millisecond))
}

// TestOnLeaveOfACleanlyStoppedNodeOnce: a node that shuts down cleanly
// sends its sessions' on_leave, then its goodbye. The goodbye is read by
// the control dispatcher, the on_leave by the event dispatcher: b's
// event dispatcher held while a stops, its word that a's sessions are
// gone must still come after a's on_leave (sessionsGone goes through the
// event channel), or b would announce them again when it took the
// goodbye.
func TestOnLeaveOfACleanlyStoppedNodeOnce(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	sess, l := threeAndAListener(t, a, b)
	sess = append(sess, a.dial(a.ws(), proto.JSON))
	tracked(t, b, 4)
	first := sess[0].ID()
	sess[0].Close()
	eventually(t, 5*time.Second, func() error {
		if l.count(first) != 1 {
			return errNotYet
		}
		return nil
	})
	tracked(t, b, 3)

	gate := make(chan struct{})
	stall := func() { <-gate }
	b.n.testHookEvents.Store(&stall)
	a.stop()
	eventually(t, 5*time.Second, func() error {
		if len(b.n.Peers()) != 0 {
			return errNotYet
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	b.n.testHookEvents.Store(nil)
	close(gate)
	onceEach(t, l, sess)
}

// onceEach waits for the on_leave of every session of sess and checks
// that l got each exactly once.
func onceEach(t *testing.T, l *leaveLog, sess []*client.Session) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		if l.total() < len(sess) {
			return errNotYet
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // any copy
	for _, s := range sess {
		if k := l.count(s.ID()); k != 1 {
			t.Fatalf("on_leave of a's session %d %d times, want once (%v)", s.ID(), k, l.n)
		}
	}
}

// TestOnLeaveOnceAfterAFullEventChannel: the word that a dead node's
// sessions are gone goes behind the node's last events even when the
// event channel is full (its pump starved): handed to the router at once,
// it overtook a's on_leave of a session that closed just before a died,
// and b announced that session again (twice in all).
func TestOnLeaveOnceAfterAFullEventChannel(t *testing.T) {
	t.Parallel()
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat = 100 * time.Millisecond
		o.PeerTimeout = time.Second
	}, "a", "b")
	a, b := nodes[0], nodes[1]
	sess, l := threeAndAListener(t, a, b)
	tracked(t, b, 3)

	// b's event pump starved: a's on_leave of sess[0] waits in evCh,
	// which then fills.
	gate := make(chan struct{})
	stall := func() { <-gate }
	b.n.testHookEventPump.Store(&stall)
	b.n.evCh <- &nats.Msg{Subject: "ew.test.nudge"} // the pump takes it, then waits at the hook
	queued := len(b.n.evCh)
	sess[0].Close()
	eventually(t, 5*time.Second, func() error {
		if len(b.n.evCh) == queued {
			return errNotYet
		}
		return nil
	})
	for len(b.n.evCh) < cap(b.n.evCh) {
		b.n.evCh <- &nats.Msg{Subject: "ew.test.filler"}
	}
	a.n.nc.Close() // killed
	eventually(t, 5*time.Second, func() error {
		if len(b.n.Peers()) != 0 {
			return errNotYet
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // without the fix, the gone word's check and announcement
	b.n.testHookEventPump.Store(nil)
	close(gate)
	onceEach(t, l, sess) // sess[0] closed before the kill
}

// threeAndAListener joins 3 sessions to a and a subscriber of
// wamp.session.on_leave to b, whose log it returns with the sessions.
func threeAndAListener(t *testing.T, a, b *tnode) ([]*client.Session, *leaveLog) {
	t.Helper()
	var sess []*client.Session
	for i := 0; i < 3; i++ {
		sess = append(sess, a.dial(a.ws(), proto.JSON))
	}
	l := &leaveLog{n: map[uint64]int{}}
	s := b.dial(b.ws(), proto.JSON)
	if _, err := s.Subscribe(ctxT(t, 20*time.Second), "wamp.session.on_leave", l.on, nil); err != nil {
		t.Fatal(err)
	}
	return sess, l
}
