package edge

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Two nodes under one name (twins: peers.go) on one NATS server, stopped
// together for twice their peer timeout: neither may forget the other on
// waking for its own silence (checkTwins), which it would hear again a
// heartbeat later; while forgotten, a single registration the other holds
// is taken over here (claims.go, twinAlive).
func stallChildTwins(t *testing.T) {
	url := jsServer(t)
	logs1, logs2 := &lockedBuf{}, &lockedBuf{}
	opts := func(logs *lockedBuf) func(*Options) {
		return func(o *Options) {
			o.NatsURL, o.Logger = url, slog.New(slog.NewTextHandler(logs, nil))
			o.Heartbeat = stallHeartbeat
			o.PeerTimeout = stallPeerTimeout
		}
	}
	a1 := startNode(t, "a", opts(logs1))
	a2 := startNode(t, "a", opts(logs2))
	eventually(t, 10*time.Second, func() error {
		for i, n := range []*tnode{a1, a2} {
			if g := n.n.Stats().PeersSameName.Load(); g != 1 {
				return fmt.Errorf("a%d: PeersSameName = %d, want 1", i+1, g)
			}
		}
		return nil
	})
	woke := stallNow(t)
	time.Sleep(2 * stallPeerTimeout)
	const forgot = "no longer heard"
	f1, f2 := strings.Count(logs1.String(), forgot), strings.Count(logs2.String(), forgot)
	t.Logf("%v after waking: twins forgotten: a1 %d, a2 %d; PeersSameName a1 %d, a2 %d", time.Since(woke).Round(time.Millisecond), f1, f2, a1.n.Stats().PeersSameName.Load(), a2.n.Stats().PeersSameName.Load())
	if f1 != 0 || f2 != 0 {
		t.Errorf("after a stall of their process the two nodes under one name forgot each other (a1 %d times, a2 %d), each still running", f1, f2)
	}
}

// TestStalledTwinsKeepEachOther: see stallChildTwins.
func TestStalledTwinsKeepEachOther(t *testing.T) {
	stallChild(t, "twins", 2*stallPeerTimeout)
}
