package route

import (
	"runtime"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A meta call that walks a realm table waits its turn past the session's
// walk budget (up to 16 per session), and held its arguments decoded into
// Go values meanwhile, 18 times their bytes for 64 KiB of empty
// dictionaries: a session whose budget was in debt (a realm of a few
// thousand registrations or sessions does that in a few calls) kept 16
// such wamp.session.count calls waiting at 18.8 MB, and each connection of
// an address as much again. A waiting call now holds its arguments as
// received (a copy, at most 64 KiB each), decoded when its turn comes.
func TestMetaWaitingHoldsRawArguments(t *testing.T) {
	e := newEnv(t, 1, nil)
	a := e.join(proto.JSON)
	var b []byte
	b = append(b, "[["...)
	for len(b) < maxMetaArgs-8 {
		b = append(b, `"",`...)
	}
	b = append(b, `""]]`...)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// The session owes 10 s of walking (a list of a large realm did that).
	a.exec.do(func() {
		a.sess.walks.refill(e.r.now())
		a.sess.walks.tokens = -10 * walkRate
	})
	before := heap()
	first := a.req + 1
	for i := 0; i < maxMetaWalkWait; i++ {
		a.sendAsync(&proto.Message{Type: proto.CodeCall, Request: a.nextReq(), Dict: a.opts(nil),
			URI: []byte("wamp.session.count"), Args: proto.Raw{Ser: proto.JSON, B: b}})
	}
	e.sync()
	held := int64(heap()) - int64(before)
	var waiting int
	a.exec.do(func() { waiting = len(a.sess.walks.q) })
	t.Logf("%d wamp.session.count calls waiting with %d bytes of arguments each: %d bytes of heap held", waiting, len(b), held)
	if waiting != maxMetaWalkWait {
		t.Fatalf("%d calls waiting, want %d", waiting, maxMetaWalkWait)
	}
	if held > 2*maxMetaWalkWait*maxMetaArgs {
		t.Fatalf("%d meta calls waiting with %d bytes of arguments each hold %d bytes, want at most twice their arguments", waiting, len(b), held)
	}
	// Their turn comes: each is answered as before, in order (no session
	// has the role ""). (A filter that is not a list of strings is refused
	// at once, before it waits: metaArgsErr.)
	e.advance(11 * time.Second)
	for i := 0; i < maxMetaWalkWait; i++ {
		if i > 0 {
			// Each filter of 21,843 roles costs more than the burst
			// (TestRoleFilterCharged): one is answered a refill.
			e.advance(time.Second)
		}
		if m := a.expect(proto.CodeResult); m.Request != first+uint64(i) || argsOf(m)[0] != int64(0) {
			t.Fatalf("count %d after its turn: %s", i, describe(m))
		}
	}
	// A valid one still counts.
	a.exec.do(func() { a.sess.walks.tokens = -walkRate })
	req := a.call("wamp.session.count", nil, []any{[]any{"anonymous"}}, nil)
	a.quiet()
	e.advance(2 * time.Second)
	if m := a.expect(proto.CodeResult); m.Request != req || argsOf(m)[0] != int64(1) {
		t.Fatalf("count after its turn: %s", describe(m))
	}
}
