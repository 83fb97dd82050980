package route

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestShutdownAnswersWaitingMetaCalls: a meta call still waiting at a
// stop, for its walk turn or on a mesh for the other nodes' answers, is a
// call in progress (it has a timeout and a CANCEL, meta.go: metaWait), and
// is answered ERROR wamp.error.canceled before the session's GOODBYE, as a
// routed call is since e130953 (README: "a call still in progress is
// answered wamp.error.canceled"). Before, leave dropped the waiting calls
// unanswered and the caller got only the GOODBYE.
func TestShutdownAnswersWaitingMetaCalls(t *testing.T) {
	t.Run("walk turn", func(t *testing.T) {
		e := newEnv(t, 1, func(c *Config) { c.GoodbyeTimeout = time.Second })
		att := e.join(proto.JSON)
		att.exec.do(func() {
			b := &att.sess.walks
			b.refill(e.r.now())
			b.tokens = -10 * walkRate // ten seconds of debt
		})
		req := att.call("wamp.session.list", nil, nil, nil)
		att.quiet()
		shutdownAnswers(t, e, att, req)
	})
	t.Run("mesh gather", func(t *testing.T) {
		mm, es := newMemMesh(t, 2, 1, nil)
		e := es[0]
		att := e.join(proto.JSON)
		es[1].join(proto.JSON)
		mm.sync()
		mm.nodes[0].gatherHold.Store(true)
		defer mm.nodes[0].releaseGathers()
		req := att.call("wamp.session.count", nil, nil, nil)
		att.quiet()
		shutdownAnswers(t, e, att, req)
		mm.nodes[0].releaseGathers()
		mm.sync()
	})
}

// shutdownAnswers shuts e's router down and wants att to get ERROR
// canceled for req, then GOODBYE, then nothing.
func shutdownAnswers(t *testing.T, e *env, att *tc, req uint64) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- e.r.Shutdown(t.Context()) }()
	m := recvWithin(t, att, 5*time.Second)
	if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URICanceled ||
		!strings.Contains(fmt.Sprint(argsOf(m)), "shut down") {
		t.Fatalf("a meta call waiting at the stop: %s, want ERROR %s (shut down) before the GOODBYE", describe(m), proto.URICanceled)
	}
	if m := recvWithin(t, att, 5*time.Second); m.Type != proto.CodeGoodbye {
		t.Fatalf("after the ERROR: %s, want GOODBYE", describe(m))
	}
	att.send(&proto.Message{Type: proto.CodeGoodbye, Dict: att.opts(nil), URI: []byte(proto.CloseGoodbyeAndOut)})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}
