package route

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A client's sessions waiting for its share of walk budget wait in line
// on it (walkOwner.line), and no other session of the client walks on the
// share before the first. On a mesh the first's own budget may go into
// debt while it waits: the other nodes' answers to its gathers in flight
// are charged as they come (chargeRemoteRetained, chargeRemote). It kept
// its place, timed for its own debt, and every other session of the
// authid waited behind it with the share whole. A first in line whose own
// budget is in debt now lets the next have its turn, and takes its place
// again at the end once its debt is paid.
func TestMeshWalkLineFirstInOwnDebtPassesTurn(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a, b := es[0], es[1]
	// Node B retains 8 events of 512 KiB: a session of A that asks for
	// them is charged 262,144 entries once B's answers are in (4 of its
	// own budget's bursts).
	big := strings.Repeat("k", 512<<10)
	pub := b.joinAs(proto.MsgPack, "pub")
	const topics = 8
	for i := range topics {
		pub.publish("com.big."+strconv.Itoa(i), map[string]any{"retain": true, "acknowledge": true}, []any{big}, nil)
		pub.expect(proto.CodePublished)
	}
	w := a.joinAs(proto.MsgPack, "dev")
	x := a.joinAs(proto.MsgPack, "dev")
	y := a.joinAs(proto.MsgPack, "dev")
	mm.sync()
	a.advance(time.Minute) // the budgets full; the clock stops here
	mm.sync()

	// w puts the authid's share in debt: a session.list with a filter of
	// 10,000 roles is charged 80,000 entries here and as much again for
	// B's walk.
	roles := make([]any, 10_000)
	for i := range roles {
		roles[i] = "r" + strconv.Itoa(i)
	}
	w.call("wamp.session.list", nil, []any{roles}, nil)
	mm.sync()
	w.expect(proto.CodeResult)

	// x's count waits for the share, first in line.
	xreq := x.call("wamp.session.count", nil, nil, nil)
	mm.sync()
	// x's get_retained SUBSCRIBEs gather at once (its own budget whole)
	// and are charged as B answers, all 8 in flight before.
	mm.nodes[0].gatherHold.Store(true)
	for i := range topics {
		x.subscribeRetained("com.big." + strconv.Itoa(i))
	}
	mm.sync()
	mm.nodes[0].releaseGathers()
	mm.sync()
	// y's count waits for the share, behind x.
	yreq := y.call("wamp.session.count", nil, nil, nil)
	mm.sync()

	var shareWait, ownWait int64
	var xFirst, yInLine bool
	a.execs[0].do(func() {
		sh := a.r.Shard(0)
		now := a.r.now()
		o := x.sess.walks.own
		wo := &a.r.walkOwners
		wo.mu.Lock()
		shareWait = o.wait(now)
		xFirst = o.first() == x.sess
		yInLine = y.sess.walks.inLine
		wo.mu.Unlock()
		ownWait = sh.walkWait(x.sess, false)
	})
	t.Logf("share in debt for %v, x's own budget for %v; x first in line %v, y in line %v",
		time.Duration(shareWait), time.Duration(ownWait), xFirst, yInLine)
	if shareWait == 0 || !yInLine || ownWait < shareWait+int64(100*time.Millisecond) {
		t.Fatalf("setup: the share in debt for %v (want some), y in line %v (want true), x's own budget in debt for %v (want 100 ms more than the share)",
			time.Duration(shareWait), yInLine, time.Duration(ownWait))
	}

	// The share paid, x's own debt not: y's turn.
	a.advance(time.Duration(shareWait) + 10*time.Millisecond)
	mm.sync()
	yAnswered := false
	for len(y.peer.in) > 0 {
		if m := <-y.peer.in; m.Request == yreq {
			yAnswered = true
		}
	}
	if !yAnswered {
		var left int64
		a.execs[0].do(func() { left = a.r.Shard(0).walkWait(x.sess, false) })
		t.Fatalf("y's count was not answered once the authid's share was paid: it waits behind x, first in line with its own budget in debt for %v more", time.Duration(left))
	}
	// None is lost: x's count is answered once its own debt is paid.
	xAnswered := false
	for i := 0; !xAnswered && i < 100; i++ {
		a.advance(50 * time.Millisecond)
		mm.sync()
		for len(x.peer.in) > 0 {
			if m := <-x.peer.in; m.Request == xreq && m.Type == proto.CodeResult {
				xAnswered = true
			}
		}
	}
	if !xAnswered {
		t.Fatal("x's count was never answered")
	}
}
