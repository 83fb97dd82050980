package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// refusingPeer refuses every EVENT as a subscriber past its high-water
// mark does, and counts them.
type refusingPeer struct {
	benchPeer
	events int
}

func (p *refusingPeer) Send(b []byte, c Class) error {
	if c == ClassEvent {
		p.events++
		return ErrPeerSlow
	}
	return nil
}

// TestPublishToSlowSubscribersAllocatesNothing: a PUBLISH to a topic that
// several subscriptions of each subscriber match (an exact one and a
// prefix here), while thousands of its subscribers are slow, allocates
// nothing, offers each slow subscriber the event once, and counts every
// event dropped. Before, deliverEvents kept the sessions refused in a map,
// kept for the next publication only up to 1,024 entries: with 4,000
// slow subscribers (four addresses' worth of connections that never read)
// every PUBLISH to their topic built a new one, 436 KB in 47 allocations.
func TestPublishToSlowSubscribersAllocatesNothing(t *testing.T) {
	b := &testing.B{}
	r := benchRouter(b, 1)
	defer r.Close()
	sh := r.Shard(0)
	opts, _ := proto.EncodeValue(proto.MsgPack, map[string]any{})
	popts, _ := proto.EncodeValue(proto.MsgPack, map[string]any{"match": "prefix"})
	hello, _ := proto.EncodeValue(proto.MsgPack, map[string]any{"roles": allFeatures})
	const n = 4000
	peers := make([]*refusingPeer, n)
	for i := range peers {
		p := &refusingPeer{benchPeer: benchPeer{ser: proto.MsgPack}}
		peers[i] = p
		ss := sh.Open(p)
		sh.Receive(ss, encode(b, proto.MsgPack, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: hello}))
		sh.Receive(ss, encode(b, proto.MsgPack, &proto.Message{Type: proto.CodeSubscribe, Request: 1, Dict: opts, URI: []byte("com.t")}))
		sh.Receive(ss, encode(b, proto.MsgPack, &proto.Message{Type: proto.CodeSubscribe, Request: 2, Dict: popts, URI: []byte("com.")}))
	}
	pub, _ := benchJoin(b, sh, proto.MsgPack)
	args, _ := proto.EncodeValue(proto.MsgPack, []any{"payload"})
	msg := encode(b, proto.MsgPack, &proto.Message{Type: proto.CodePublish, Request: 1, Dict: opts, URI: []byte("com.t"), Args: args})
	dropped := sh.stats.EventsDropped.Load()
	sh.Receive(pub, msg)
	if got := sh.stats.EventsDropped.Load() - dropped; got != 2*n {
		t.Fatalf("%d events counted dropped, want %d (two subscriptions of %d slow subscribers)", got, 2*n, n)
	}
	for _, p := range peers {
		if p.events != 1 {
			t.Fatalf("a slow subscriber was offered the event %d times, want once", p.events)
		}
	}
	if a := testing.AllocsPerRun(20, func() { sh.Receive(pub, msg) }); a != 0 {
		t.Fatalf("%v allocations per PUBLISH to %d slow subscribers", a, n)
	}
	// A later publication is offered again.
	for _, p := range peers {
		if p.events != 22 {
			t.Fatalf("a slow subscriber was offered %d events of 22 publications, want each once", p.events)
		}
	}
}
