package client

import (
	"context"
	"runtime"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A RESULT for a request the session has no call for (a call forgotten
// after its CANCEL's wait, or a hostile router's invention) had its
// payload decoded before it was dropped: a router sending 30 RESULTs of
// 50 KB of small MsgPack integers had the client build, and throw away,
// up to 16 times each (DecodeRatio) plus 64 KiB, for nothing; so had an
// ERROR for no call, an ERROR for an INVOCATION (decoded for a debug
// line) and one for no SUBSCRIBE. They are dropped undecoded now.
func TestOrphanResultNotDecoded(t *testing.T) {
	const ints, orphans = 50_000, 30
	s, c := setup(t, "rs", proto.MsgPack)
	pad := make([]any, ints)
	for i := range pad {
		pad[i] = i % 100
	}
	args := c.raw([]any{pad})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 2 * orphans {
		r := &proto.Message{Type: proto.CodeResult, Request: uint64(1000 + i), Dict: c.raw(map[string]any{}), Args: args}
		switch i % 3 {
		case 1:
			r.Opt.SetBool(proto.KeyProgress, true)
		case 2:
			r = &proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: uint64(1000 + i), Dict: c.raw(map[string]any{}), URI: []byte("com.example.error"), Args: args}
		}
		if i >= orphans {
			// ERRORs of other request types: an INVOCATION's (nothing
			// waits for it), a SUBSCRIBE's for no request.
			typ := []proto.Code{proto.CodeInvocation, proto.CodeSubscribe}[i%2]
			r = &proto.Message{Type: proto.CodeError, ReqType: typ, Request: uint64(1000 + i), Dict: c.raw(map[string]any{}), URI: []byte("com.example.error"), Args: args}
		}
		c.send(r)
	}
	// Read (while it moves): the call's wait below is for their handling
	// and the call's, not for a loaded machine's read of 3 MB.
	readAll(t, s, c)
	// A call answered after them: the reader has handled them all.
	a := goDo(func() (*Result, error) { return s.Call(context.Background(), "com.example.ping", nil, nil, nil) })
	m := c.expect(proto.CodeCall)
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request, Dict: c.raw(map[string]any{}), Args: c.raw([]any{"pong"})})
	r, err := a.wait(t)
	noErr(t, "Call", err)
	eq(t, "result", r.Args, []any{"pong"})
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d RESULTs and ERRORs of %d bytes for no call: %d bytes allocated", 2*orphans, len(args.B), alloc)
	if alloc > uint64(2*orphans*len(args.B)*4) {
		t.Fatalf("%d RESULTs and ERRORs of %d bytes for no call allocated %d bytes: their payloads were decoded", 2*orphans, len(args.B), alloc)
	}
}
