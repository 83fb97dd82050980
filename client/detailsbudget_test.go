package client

import (
	"context"
	"runtime"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// bigDetails is a MsgPack dictionary {"x": [n empty dictionaries]}: n+8
// bytes that take about 64 bytes per element decoded.
func bigDetails(n int) proto.Raw {
	return proto.Raw{B: append([]byte{0x81, 0xa1, 'x'}, emptyMaps(n).B...), Ser: proto.MsgPack}
}

// The decode budget (Config.DecodeRatio) bounded a message's Arguments
// and ArgumentsKw, not its Details: a router (the client talks to
// untrusted ones) sending a 1 MiB RESULT, EVENT, INVOCATION, ERROR or
// GOODBYE whose Details was 2^20 empty dictionaries made the client hold
// 64 times that decoded (68 MiB for one RESULT here). Details over the
// budget of their own size are left out (nil), as an ERROR's payload is.
func TestDetailsWithinDecodeBudget(t *testing.T) {
	s, c := setup(t, "rs", proto.MsgPack)
	a := goDo(func() (*Result, error) { return s.Call(context.Background(), "com.example.p", nil, nil, nil) })
	m := c.expect(proto.CodeCall)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request, Dict: bigDetails(1 << 20), Args: c.raw([]any{"ok"})})
	r, err := a.wait(t)
	noErr(t, "Call", err)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapInuse) - int64(before.HeapInuse)
	if _, ok := r.Details["x"]; ok {
		t.Fatalf("RESULT Details over the decode budget decoded (heap +%d MiB for a 1 MiB message)", held>>20)
	}
	eq(t, "result", r.Args, []any{"ok"})
	runtime.KeepAlive(r)

	// The same from an ERROR, and a GOODBYE ending the session.
	a = goDo(func() (*Result, error) { return s.Call(context.Background(), "com.example.p", nil, nil, nil) })
	m = c.expect(proto.CodeCall)
	c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: m.Request, URI: []byte("com.example.error"), Dict: bigDetails(1 << 20)})
	_, err = a.wait(t)
	if e := wampErr(t, err, "com.example.error"); e.Details != nil {
		t.Fatal("ERROR Details over the decode budget decoded")
	}
}
