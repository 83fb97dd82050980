package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// shardBufs returns the capacity of the encoding buffers shard i keeps
// between messages, read on its goroutine.
func (e *env) shardBufs(i int) int {
	e.t.Helper()
	s := e.r.shards[i]
	done := make(chan int)
	if err := s.Do(func() {
		n := cap(s.buf)
		for _, b := range s.evbuf {
			n += cap(b)
		}
		done <- n
	}); err != nil {
		e.t.Fatal(err)
	}
	return <-done
}

// One large message encoded for a peer of another serializer (a call's
// arguments, an event's) must not leave a shard holding a buffer of its
// size for good: an edge router's memory is small, and every shard would
// keep its own.
func TestLargeEncodingNotKept(t *testing.T) {
	e := newEnv(t, 1, nil)
	callee, sub := e.join(proto.MsgPack), e.join(proto.CBOR)
	callee.register("com.big", nil)
	sub.subscribe("com.big", nil)
	caller := e.join(proto.JSON)
	big := strings.Repeat("x", 4<<20)
	req := caller.call("com.big", nil, []any{big}, nil)
	inv := callee.expect(proto.CodeInvocation)
	callee.yield(inv.Request, nil, []any{big})
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("result for %d, want %d", m.Request, req)
	}
	caller.publish("com.big", nil, []any{big}, nil)
	sub.expect(proto.CodeEvent)
	e.sync()
	if n := e.shardBufs(0); n > maxKeptBuf*5 {
		t.Fatalf("the shard keeps %d bytes of encoding buffers after 4 MiB messages, want at most %d", n, maxKeptBuf*5)
	}
}
