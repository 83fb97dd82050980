package edge

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/proto"
)

// A stall of the whole process (SIGSTOP, a paused VM, swap, thermal
// throttling) stops a node's NATS goroutines as well as its control
// dispatcher: what its peers sent meanwhile waits in sockets until it
// runs again. The node must not take its peers for dead for its own
// silence, nor end its gathers before reading the answers waiting for
// it. These tests run the nodes in a child process (this test binary,
// stallChildEnv naming the scenario), which they stop with SIGSTOP.

const stallChildEnv = "EDGE_STALL_CHILD"

// stallChild runs scenario in a child process. The child prints "stall"
// when it is ready; it is then stopped for stall, continued, and told
// "woke" on its standard input 100 ms later. The child's test must pass.
func stallChild(t *testing.T, scenario string, stall time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStallChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), stallChildEnv+"="+scenario)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	stopped := false
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if line == "stall" && !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(stall)
			cmd.Process.Signal(syscall.SIGCONT)
			// What waited in the child's sockets takes a moment to be
			// read once it runs again: the child's side of the stall
			// (stallNow) goes on a little after it was continued.
			time.Sleep(100 * time.Millisecond)
			fmt.Fprintln(stdin, "woke")
		}
	}
	err = cmd.Wait()
	if !stopped {
		t.Fatalf("the child never got ready to stall (%v):\n%s", err, out.String())
	}
	if err != nil {
		t.Fatalf("after a stall of %v: %v\n%s", stall, err, out.String())
	}
	t.Logf("child:\n%s", out.String())
}

// stallNow tells the parent to stop this process and waits until it has
// been continued (and 100 ms more); it returns when it was told so.
func stallNow(t *testing.T) time.Time {
	t.Helper()
	fmt.Println("stall")
	r := bufio.NewReader(os.Stdin)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("reading the parent's word: %v", err)
	}
	return time.Now()
}

// TestStallChild is the child's side of the stall tests; skipped unless
// run as one.
func TestStallChild(t *testing.T) {
	switch os.Getenv(stallChildEnv) {
	case "":
		t.Skip("run by the stall tests in a child process")
	case "peers":
		stallChildPeers(t)
	case "gathers":
		stallChildGathers(t)
	case "deadpeer":
		stallChildDeadPeer(t)
	case "claimwait":
		stallChildClaimWait(t)
	case "twins":
		stallChildTwins(t)
	case "paced":
		stallChildPaced(t)
	default:
		t.Fatalf("unknown scenario %q", os.Getenv(stallChildEnv))
	}
}

const (
	stallHeartbeat   = 200 * time.Millisecond
	stallPeerTimeout = time.Second
)

// Two idle meshed nodes, stopped together for twice their peer timeout:
// neither may take the other for dead once they run again.
func stallChildPeers(t *testing.T) {
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat = stallHeartbeat
		o.PeerTimeout = stallPeerTimeout
	}, "a", "b")
	a, b := nodes[0], nodes[1]
	time.Sleep(2 * stallHeartbeat)
	woke := stallNow(t)
	time.Sleep(2 * stallPeerTimeout)
	lostA, lostB := a.n.Stats().PeersLost.Load(), b.n.Stats().PeersLost.Load()
	t.Logf("%v after waking: peers lost: a %d, b %d; a sees %v, b sees %v", time.Since(woke).Round(time.Millisecond), lostA, lostB, a.n.Peers(), b.n.Peers())
	if lostA != 0 || lostB != 0 {
		t.Errorf("after a stall of their process the nodes took each other for dead (peers lost: a %d, b %d)", lostA, lostB)
	}
}

// TestStalledNodesKeepTheirPeers: two meshed nodes in one process stopped
// (SIGSTOP) for twice peer_timeout took each other for dead on waking:
// each judged the other's silence before the heartbeats that waited in
// its sockets were read.
func TestStalledNodesKeepTheirPeers(t *testing.T) {
	stallChild(t, "peers", 2*stallPeerTimeout)
}

// A node whose process stops while its gathers' answers are in (here: in
// the batch its control dispatcher has just taken) and wakes after
// gather_timeout: its gathers must read them, not end without them.
func stallChildGathers(t *testing.T) {
	nodes := clusterWith(t, func(o *Options) { o.PeerTimeout = 30 * time.Second }, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 60*time.Second)
	sa := a.dial(a.ws(), proto.JSON)
	b.dial(b.rs(), proto.JSON) // b's one session
	count := func() int64 {
		t.Helper()
		res, err := sa.Call(ctx, "wamp.session.count", nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return toInt(res.Args[0])
	}
	eventually(t, 10*time.Second, func() error {
		if n := count(); n != 2 {
			return fmt.Errorf("session.count %d, want 2", n)
		}
		return nil
	})
	before := a.n.Stats().GathersIncomplete.Load()
	// The process stops as a's dispatcher takes the first answer to one
	// of the calls below, and goes on once continued.
	prefix := nodeInbox("a") + ".a."
	var once sync.Once
	wokeAt := make(chan time.Time, 1)
	hook := func(ms []*nats.Msg) {
		for _, m := range ms {
			if strings.HasPrefix(m.Subject, prefix) {
				once.Do(func() {
					// b's other answers come meanwhile (b, stalled
					// too, would refuse a query it had not run yet
					// as late: clock.go).
					time.Sleep(100 * time.Millisecond)
					wokeAt <- stallNow(t)
				})
				return
			}
		}
	}
	a.n.testHookControl.Store(&hook)
	const calls = 4
	counts := make([]int64, calls)
	var wg sync.WaitGroup
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := sa.Call(ctx, "wamp.session.count", nil, nil, nil)
			if err != nil {
				t.Error(err)
				return
			}
			counts[i] = toInt(res.Args[0])
		}()
	}
	wg.Wait()
	a.n.testHookControl.Store(nil)
	var woke time.Time
	select {
	case woke = <-wokeAt:
	case <-time.After(10 * time.Second):
		t.Fatal("a's dispatcher never took an answer to stall on")
	}
	inc := a.n.Stats().GathersIncomplete.Load() - before
	t.Logf("counts %v (want 2 each), %v after waking; gathers incomplete %d", counts, time.Since(woke).Round(time.Millisecond), inc)
	if inc != 0 {
		t.Errorf("after a stall of its process, a ended %d of its %d gathers without b's answer, which it had (counts %v)", inc, calls, counts)
	}
}

// TestStalledAskerReadsWaitingAnswers: an asker whose process stopped for
// longer than gather_timeout (500 ms) with the answers to its gathers in
// ended them on waking, before reading those answers.
func TestStalledAskerReadsWaitingAnswers(t *testing.T) {
	stallChild(t, "gathers", 1500*time.Millisecond)
}

// A peer that went silent (a black hole) as this node's process stopped
// is still taken for dead within peer_timeout and a heartbeat or two of
// waking: the stall is credited, not more.
func stallChildDeadPeer(t *testing.T) {
	_, edge, px := hubAndEdgeWith(t, func(o *Options) {
		o.Heartbeat = stallHeartbeat
		o.PeerTimeout = stallPeerTimeout
	})
	time.Sleep(2 * stallHeartbeat)
	px.freeze()
	woke := stallNow(t)
	var lostAt time.Duration
	if !within(stallPeerTimeout+3*stallHeartbeat, func() error {
		if edge.n.Stats().PeersLost.Load() == 0 {
			return fmt.Errorf("edge still holds the hub")
		}
		lostAt = time.Since(woke)
		return nil
	}) {
		t.Errorf("the edge, whose hub went silent as its process stopped, did not take the hub for dead within %v of waking", stallPeerTimeout+3*stallHeartbeat)
		return
	}
	t.Logf("the edge took the silent hub for dead %v after waking (peer_timeout %v)", lostAt.Round(time.Millisecond), stallPeerTimeout)
}

// TestStalledNodeStillFindsDeadPeer: the stall's credit does not keep a
// peer that went silent alive past peer_timeout of this node's running.
func TestStalledNodeStillFindsDeadPeer(t *testing.T) {
	stallChild(t, "deadpeer", 2*stallPeerTimeout)
}
