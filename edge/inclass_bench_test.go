package edge

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// BenchmarkInqPushCalls measures the control pump's push of a batch of
// lone messages on a node's call subject (results, an eighth of them
// errors, and calls), the path 553dc84 added route.MeshEndEnvelope to:
// ns per message, no allocation in steady state.
func BenchmarkInqPushCalls(b *testing.B) {
	me := nodeInbox("bench") + "."
	q := newInq(newInbound(64<<20), me)
	payload := make([]byte, 64)
	batch := make([]*nats.Msg, pumpBatch)
	var cost int64
	for i := range batch {
		var d []byte
		switch {
		case i%8 == 0: // an error result: shard 0, call id, flags rsError, uri, message
			d = append([]byte{'R', 0, 0xd2, 0x09, 1, 3, 'a', '.', 'b', 0}, payload...)
		case i%2 == 0: // a result
			d = append([]byte{'R', 0, 0xd2, 0x09, 0, 0, 0}, payload...)
		default: // a call
			d = append([]byte{'C', 0, 0xd2, 0x09}, payload...)
		}
		batch[i] = &nats.Msg{Subject: me + "m", Reply: "_INBOX.x", Data: d}
		cost += msgCost(batch[i])
	}
	spare := make([]*nats.Msg, 0, pumpBatch)
	b.ReportAllocs()
	for b.Loop() {
		q.push(batch)
		spare = q.take(spare)
		q.done(cost)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/msg")
}
