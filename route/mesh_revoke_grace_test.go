package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A conflict with another node's earlier registration is revoked only
// when it lasts meshRevokeGrace (b044967: a directory change read stale
// is undone by the next). The grace ran from the first conflict the
// registration had, not from the one still standing: a conflict that
// ended and another that began 0.9 s later (another stale pair of
// changes read late) had the callee revoked 0.1 s after the second
// began, though it too was gone 0.4 s later.
func TestMeshRevokeGraceFromTheConflictStanding(t *testing.T) {
	_, envs := newMemMesh(t, 1, 1, nil)
	e := envs[0]
	callee := e.join(proto.JSON)
	callee.register("com.app.shared", map[string]any{"invoke": "roundrobin"})
	set := func(callees int) {
		e.r.MeshUpdate(99, "nodeZ", MeshRealmReg{Realm: "realm1", MeshReg: MeshReg{Match: proto.MatchExact, URI: "com.app.shared",
			Invoke: proto.InvokeRandom, Callees: callees, First: 1, Last: 1}})
	}
	start := time.Now()
	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
	set(1) // a conflict this node loses (the other's First is earlier)
	at(300 * time.Millisecond)
	set(0) // it ends
	at(900 * time.Millisecond)
	set(1) // another begins
	at(1300 * time.Millisecond)
	set(0) // and ends within the grace
	at(1450 * time.Millisecond)
	if n := e.r.MeshStats().Revoked.Load(); n != 0 {
		t.Fatalf("%d callee revoked for a conflict that lasted 0.4 s (the one before it ended 0.6 s before it began)", n)
	}
	// A conflict that lasts is still revoked, meshRevokeGrace after it
	// began.
	began := time.Now()
	set(1)
	for e.r.MeshStats().Revoked.Load() == 0 {
		if time.Since(began) > 2*time.Second {
			t.Fatal("a lasting conflict not revoked within 2 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(began); took < 900*time.Millisecond {
		t.Fatalf("a conflict revoked %v after it began, within the grace (%v)", took.Round(time.Millisecond), meshRevokeGrace)
	}
}
