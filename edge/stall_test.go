package edge

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
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
// "woke" on its standard input. The child's test must pass.
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
// been continued; it returns when it was.
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
