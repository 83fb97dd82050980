package client

import (
	"slices"
	"testing"
	"time"
)

// Clients whose sessions lasted, dropped together (a router restarting,
// a node of a mesh dying), do not all redial at once: the first redial
// after a session that lasted waits a random part of MinBackoff, so that
// a fleet of clients reaches the router (or the next node) spread over
// it, not in the same millisecond. 8 Clients, MinBackoff = MaxBackoff =
// 300 ms, sessions of 400 ms dropped together.
func TestRedialAfterLastingSessionJittered(t *testing.T) {
	p := newPeer(t)
	rc := ReconnectConfig{MinBackoff: 300 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}
	var cls []*Client
	var conns []*peerConn
	for range 8 {
		cl, c := connectPeer(t, p, clientCfg(p), rc)
		cls, conns = append(cls, cl), append(conns, c)
	}
	defer func() {
		for _, cl := range cls {
			done := goDo(func() (struct{}, error) { return struct{}{}, cl.Close() })
			for done.pending(10 * time.Millisecond) {
				drain(p)
			}
		}
		drain(p)
	}()
	time.Sleep(400 * time.Millisecond) // every session lasted MaxBackoff
	dropped := time.Now()
	for _, c := range conns {
		c.conn.Close()
	}
	var after []time.Duration
	deadline := time.After(wait)
	for len(after) < len(cls) {
		select {
		case c := <-p.conns:
			after = append(after, time.Since(dropped))
			c.conn.Close()
		case <-deadline:
			t.Fatalf("%d of %d clients redialled", len(after), len(cls))
		}
	}
	slices.Sort(after)
	spread := after[len(after)-1] - after[0]
	t.Logf("redials %v after the drop, spread %v", after, spread)
	if spread < 60*time.Millisecond {
		t.Errorf("8 clients dropped together redialled within %v of each other (%v after the drop): no jitter on the first redial after a session that lasted; want them spread over MinBackoff (300 ms)", spread.Round(time.Millisecond), after[0].Round(time.Millisecond))
	}
	if last := after[len(after)-1]; last > 300*time.Millisecond+200*time.Millisecond {
		t.Errorf("the last redial came %v after the drop; want within MinBackoff (300 ms) and some slack", last.Round(time.Millisecond))
	}
}
