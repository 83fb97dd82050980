package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestShutdownAnswersEachCallOnce: at a stop, each call in progress is
// answered once (ERROR wamp.error.canceled), then the caller gets its GOODBYE and nothing
// after: callers on the callee's shard and on the other, progressive
// results in flight. e130953 answered every call first but left it in
// its caller's calls until the GOODBYE: a callee on the same shard whose
// GOODBYE came first answered it again from its leave (two ERRORs
// canceled for each such caller).
func TestShutdownAnswersEachCallOnce(t *testing.T) {
	e := newEnv(t, 2, func(c *Config) { c.GoodbyeTimeout = time.Second })
	callee := e.join(proto.JSON)
	callee.register("com.x", nil)
	var callers []*tc
	var reqs []uint64
	for i := range 6 { // on shards 1, 0, 1, 0, 1, 0
		c := e.join(proto.JSON)
		o := map[string]any{}
		if i%2 == 0 {
			o["receive_progress"] = true
		}
		reqs = append(reqs, c.call("com.x", o, nil, nil))
		callers = append(callers, c)
	}
	var invs []uint64
	for range callers {
		invs = append(invs, callee.expect(proto.CodeInvocation).Request)
	}
	done := make(chan error, 1)
	go func() { done <- e.r.Shutdown(t.Context()) }()
	for i, inv := range invs { // progressive results racing the stop
		if i%2 == 0 {
			callee.send(&proto.Message{Type: proto.CodeYield, Request: inv, Dict: callee.opts(map[string]any{"progress": true})})
		}
	}
	for i, c := range callers {
		finals := 0
		for {
			m := recvWithin(t, c, 5*time.Second)
			if m.Type == proto.CodeGoodbye {
				break
			}
			if m.Request != reqs[i] {
				t.Fatalf("caller %d: %s", i, describe(m))
			}
			if m.Type == proto.CodeError || (m.Type == proto.CodeResult && !m.Opt.Bool(proto.KeyProgress, false)) {
				finals++
			}
		}
		if finals != 1 {
			t.Errorf("caller %d (shard %d): %d final answers before its GOODBYE, want 1", i, (i+1)%2, finals)
		}
		c.send(&proto.Message{Type: proto.CodeGoodbye, Dict: c.opts(nil), URI: []byte(proto.CloseGoodbyeAndOut)})
	}
	for _, c := range callers {
		c.quiet() // nothing after the GOODBYE
	}
	callee.send(&proto.Message{Type: proto.CodeGoodbye, Dict: callee.opts(nil), URI: []byte(proto.CloseGoodbyeAndOut)})
	<-done
}
