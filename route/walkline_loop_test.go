package route_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/route"
)

// Sessions of one client waiting for its share of walk budget were each
// timed for the moment the share's debt was paid: all woke then, one
// walked and put the share in debt again, and the rest re-armed for the
// next moment, so that n waiting sessions cost about n²/2 wake-ups (each
// taking the shares' mutex twice), and the one that walked was whichever
// the loop reached first. They now wait in line on the share, in the
// order they came to wait for it, and only the first is timed: a wake-up
// or two per walk.
func TestWalkShareLineWakesFirstOnly(t *testing.T) {
	clk := newStepClock()
	cl := startClockedLoops(t, 2, clk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// 1,000 subscriptions: a list of them costs 8,000 entries, and the
	// address's share (131,072 at once) pays for 16 at once.
	const subs = 1000
	owner := cl.dial()
	for i := range subs {
		if _, err := owner.Subscribe(ctx, "com.sub."+strconv.Itoa(i), func(*client.Event) {}, nil); err != nil {
			t.Fatal(err)
		}
	}
	const n = 60
	dones := make([]<-chan error, n)
	sessions := make([]*client.Session, n)
	for i := range n {
		sessions[i] = cl.dial()
	}
	start := route.WalkWakes(cl.r)
	answered := make([]bool, n)
	first := 0
	for i := range n {
		// One after another: each answered, or waiting in line, before
		// the next.
		line := route.WalkLine(cl.r)
		dones[i] = pendingCalls(ctx, sessions[i], 1, "wamp.subscription.list", nil)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if route.WalkLine(cl.r) > line {
				break
			}
			if answeredWithin(t, dones[i], 1, 0) == 1 {
				answered[i] = true
				first++
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("list %d neither answered nor waiting in line after 5 s (%d in line)", i, line)
			}
		}
	}
	count := func(d time.Duration) int {
		got := 0
		for i, ch := range dones {
			if answered[i] {
				continue
			}
			if answeredWithin(t, ch, 1, d) == 1 {
				answered[i] = true
				got++
			}
		}
		return got
	}
	first += count(200 * time.Millisecond)
	t.Logf("with the clock stopped, %d of %d sessions of one address answered their list at once", first, n)
	if first >= n || first == 0 {
		t.Fatalf("with the clock stopped, %d of %d sessions of one address answered their list at once, want some and not all", first, n)
	}
	// The clock moves a few ms at a time: the share pays for about one
	// list a step.
	// The step at which each was answered: two answered at one step of
	// the clock (on two loops) may reach the client in either order, so
	// each step waits for every session that has left the line (its
	// answer sent before it leaves, walkRan) to be answered.
	var order []int
	step := make([]int, n)
	total := first
	for k, deadline := 0, time.Now().Add(60*time.Second); total < n && time.Now().Before(deadline); k++ {
		clk.add(8 * time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		for settle := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			for i, ch := range dones {
				if answered[i] {
					continue
				}
				select {
				case err := <-ch:
					if err != nil {
						t.Fatal(err)
					}
					answered[i] = true
					order = append(order, i)
					step[i] = k
					total++
				default:
				}
			}
			if total >= n-route.WalkLine(cl.r) || time.Now().After(settle) {
				break
			}
		}
	}
	if total < n {
		t.Fatalf("%d of %d lists answered after 60 s of the clock moving", total, n)
	}
	wakes := route.WalkWakes(cl.r) - start
	waited := n - first
	inversions := 0
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] && step[order[i]] > step[order[i-1]] {
			inversions++
		}
	}
	t.Logf("%d lists waited for the share: %d wake-ups of waiting sessions; answered out of their order of arrival %d times", waited, wakes, inversions)
	if inversions > 0 {
		t.Fatalf("the waiting lists were answered out of their order of arrival %d times: %v", inversions, order)
	}
	if wakes > int64(3*waited+8) {
		t.Fatalf("%d lists waited for the address's share: %d wake-ups of waiting sessions, want at most %d (a few per walk)", waited, wakes, 3*waited+8)
	}

	// A session that leaves while first in line hands its turn on: the
	// next ones are answered as the clock moves (only the first is
	// timed, so the line would stop there).
	var queued []int
	dones = make([]<-chan error, n)
	for i := range n {
		line := route.WalkLine(cl.r)
		dones[i] = pendingCalls(ctx, sessions[i], 1, "wamp.subscription.list", nil)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if route.WalkLine(cl.r) > line {
				queued = append(queued, i)
				break
			}
			if answeredWithin(t, dones[i], 1, 0) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("list %d neither answered nor waiting in line after 5 s (%d in line)", i, line)
			}
		}
		if len(queued) == 4 {
			break
		}
	}
	if len(queued) < 4 {
		t.Fatalf("only %d lists waited in line", len(queued))
	}
	sessions[queued[0]].Close()
	sessions[queued[2]].Close()
	for _, i := range []int{queued[1], queued[3]} {
		if answeredAsClockMoves(t, clk, dones[i], 1) != 1 {
			t.Fatalf("a list waiting in line behind a session that left was not answered as the clock moved")
		}
	}
}
