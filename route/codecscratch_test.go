package route

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A shard keeps no buffer of a message it is done with larger than it
// keeps between messages (maxKeptBuf): one message with a long string that
// has to be unescaped or joined (a JSON string with escapes, a CBOR string
// in chunks: a HELLO's realm is read before the session is known) grew the
// decoder's scratch to its length, and one long string or byte string
// converted to another serializer grew the encoder's, both kept for good,
// so that any client left every shard holding up to twice max_message.
func TestShardKeepsNoLargeCodecScratch(t *testing.T) {
	const n = 4 << 20
	e := newEnv(t, 1, nil)
	pub, sub := e.join(proto.CBOR), e.join(proto.JSON)
	sub.subscribe("com.big", nil)
	before := liveHeapMiB()

	// [PUBLISH, 1, {acknowledge: true}, <a topic of n bytes in 8 chunks>]:
	// joined into the decoder's scratch, then refused (too long a URI).
	b := []byte{0x84, 0x10, 0x01, 0xa1, 0x6b}
	b = append(b, "acknowledge"...)
	b = append(b, 0xf5, 0x7f)
	chunk := bytes.Repeat([]byte("a"), n/8)
	for range 8 {
		b = append(b, 0x7a, byte(len(chunk)>>24), byte(len(chunk)>>16), byte(len(chunk)>>8), byte(len(chunk)))
		b = append(b, chunk...)
	}
	b = append(b, 0xff)
	pub.sendBytes(b)
	pub.expectError(proto.CodePublish, 1, proto.URIInvalidURI)
	b, chunk = nil, nil
	if held := liveHeapMiB() - before; held > 2 {
		t.Errorf("after a topic of 4 MiB in chunks the shard holds %.1f MiB more, want at most 2", held)
	}

	// A byte string of n bytes to a JSON subscriber: held in the encoder's
	// scratch while it is converted. (A small event after it takes the
	// shard's other references to the large one.)
	pub.publish("com.big", nil, []any{make([]byte, n)}, nil)
	if ev := sub.expect(proto.CodeEvent); len(ev.Args.B) < n {
		t.Fatalf("EVENT of %d bytes", len(ev.Args.B))
	}
	pub.publish("com.big", nil, []any{1}, nil)
	sub.expect(proto.CodeEvent)
	if held := liveHeapMiB() - before; held > 2 {
		t.Errorf("after a byte string of 4 MiB converted to JSON the shard holds %.1f MiB more, want at most 2", held)
	}
}

// Nor does a shard keep the last message it delivered within itself: the
// scratch carry of its payload (Shard.lc) and the EVENT built from it
// (Shard.out) aliased the input until the shard's next message, where the
// loop releases its assembly buffer of a large message when a second
// passes without another.
func TestShardKeepsNoDeliveredMessage(t *testing.T) {
	e := newEnv(t, 1, nil)
	pub, sub := e.join(proto.JSON), e.join(proto.JSON)
	sub.subscribe("com.big", nil)
	before := liveHeapMiB()
	pub.publish("com.big", nil, []any{make([]byte, 3<<20)}, nil)
	sub.expect(proto.CodeEvent)
	if held := liveHeapMiB() - before; held > 1 {
		t.Errorf("after a PUBLISH of 4 MiB delivered on its shard the shard holds %.1f MiB more, want at most 1", held)
	}
}

// liveHeapMiB is the heap in use after a collection, in MiB (as
// route_test's heapMiB).
func liveHeapMiB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}
