package route

import (
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A wildcard pattern is indexed in a trie with a node (and a map of its
// children) per component, about 270 bytes each: a 4 KiB pattern of 2,041
// one-letter components cost ~540 KiB of heap, so one anonymous session's
// 1,024 wildcard subscriptions (4 MiB of SUBSCRIBEs) took a loops:1 router
// to 630 MB of RSS, and the realm's 4,096 to 2.5 GB. Wildcard patterns are
// now refused past maxWildcardComponents components.
func TestWildcardPatternDepthBounded(t *testing.T) {
	e := newEnv(t, 1, nil)
	c := e.join(proto.MsgPack)
	tail := strings.Repeat(".b", 2040)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 32
	for i := range n {
		for _, code := range []proto.Code{proto.CodeSubscribe, proto.CodeRegister} {
			req := c.nextReq()
			c.send(&proto.Message{Type: code, Request: req, URI: []byte("w" + strconv.Itoa(i) + tail), Dict: c.opts(map[string]any{"match": "wildcard"})})
			m := c.recv()
			if m.Type == proto.CodeError && string(m.URI) != proto.URIInvalidURI {
				t.Fatalf("deep pattern refused with %s", describe(m))
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d wildcard subscriptions and registrations of 2,041 components: heap grew %d bytes", n, grown)
	if grown > 4<<20 {
		t.Fatalf("%d wildcard patterns of 4 KiB (%d bytes of REGISTER/SUBSCRIBE) made the heap grow %d bytes", 2*n, 2*n*len(tail), grown)
	}
	// Up to the bound, a pattern is taken; one component more is refused.
	ok := strings.TrimPrefix(strings.Repeat(".x", 64), ".")
	c.subscribe(ok, map[string]any{"match": "wildcard"})
	c.register(ok, map[string]any{"match": "wildcard"})
	req := c.nextReq()
	c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, URI: []byte(ok + ".y"), Dict: c.opts(map[string]any{"match": "wildcard"})})
	c.expectError(proto.CodeSubscribe, req, proto.URIInvalidURI)
	// Exact and prefix URIs are not indexed by component: not bounded.
	c.subscribe(ok+tail[:3000], nil)
	c.subscribe(ok+tail[:3000], map[string]any{"match": "prefix"})
}
