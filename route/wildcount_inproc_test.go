package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The per-owner quarter of a realm's wildcard patterns (f28a336) is for
// clients: sessions inside the process without a client's address (the
// gateway's webhooks and HTTP callees, an embedder's sessions, all the
// owner "") are configured by the operator, and had the realm's whole
// bound before; their patterns past 1,024 were refused "this client's",
// each webhook retrying for ever with an ERROR line at each attempt.
// Two such sessions make 700 patterns each: all are SUBSCRIBED.
func TestWildcardRealmCountInProcessNotQuartered(t *testing.T) {
	e := newEnv(t, 1, nil)
	sh := e.r.Shard(0)
	hello, _ := proto.EncodeValue(proto.JSON, map[string]any{"roles": allFeatures})
	opts, _ := proto.EncodeValue(proto.JSON, map[string]any{"match": "wildcard"})
	for s := range 2 {
		p := inProcPeer{&benchPeer{ser: proto.JSON}}
		refused := 0
		var last string
		done := make(chan struct{})
		if err := sh.Do(func() {
			defer close(done)
			ss := sh.Open(p)
			sh.Receive(ss, encodeMsg(t, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: hello}))
			for i := range 700 {
				sh.Receive(ss, encodeMsg(t, &proto.Message{Type: proto.CodeSubscribe, Request: uint64(i + 1), Dict: opts, URI: []byte(fmt.Sprintf("s%d.p%d..z", s, i))}))
				var m proto.Message
				var dec proto.Decoder
				if err := dec.Decode(proto.JSON, p.last, &m); err != nil || m.Type != proto.CodeSubscribed {
					refused++
					last = fmt.Sprintf("%v %s %v", m.Type, m.URI, err)
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		<-done
		if refused > 0 {
			t.Fatalf("in-process session %d: %d of 700 wildcard SUBSCRIBEs refused (the last: %s)", s, refused, last)
		}
	}
}
