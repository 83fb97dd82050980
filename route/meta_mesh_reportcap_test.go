package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A count another node reports in its answer to a gathered meta call (what
// a removal it carried out visited, [true, n]; what a list or kill walked,
// the second element of its result; the sessions a kill killed) is charged
// to the asking session and its client's share (walkOwner). A hostile or
// buggy node's 2^53 was capped at 2^32 entries only: about 68 minutes of
// the client's share for a removal, nine hours for a list (8 per entry),
// during which every meta call of every session of that authid or address
// on the asking node waited. Each is now capped at what one node's walk
// may be (meshReportMax), so one answer costs the client at most a second.
func TestMeshReportedCountCapped(t *testing.T) {
	const lie = uint64(1) << 53
	enc := func(v any) []byte {
		b, err := proto.EncodeValue(proto.MsgPack, v)
		if err != nil {
			t.Fatal(err)
		}
		return b.B
	}
	for _, c := range []struct {
		proc   string
		answer any
	}{
		{"wamp.subscription.remove_subscriber", []any{true, lie}},
		{"wamp.registration.remove_callee", []any{true, lie}},
		{"wamp.subscription.list", []any{true, []any{map[string]any{"exact": []any{}}, lie}}},
		{"wamp.session.list", []any{true, []any{[]any{}, lie}}},
		{"wamp.session.kill_by_authid", []any{true, []any{lie, lie, []any{}}}},
		{"wamp.session.kill_all", []any{true, []any{lie}}},
	} {
		raw := enc(c.answer)
		answers := decodeAnswers([][]byte{raw})
		cost := remoteCost(c.proc, answers, meshScanMin)
		limit := int64(walkRate * ownerWalkShare) // a second of a client's share
		t.Logf("%s answered %d bytes claiming 2^53: charged %d entries (%.1f s of the client's share)",
			c.proc, len(raw), cost, float64(cost)/float64(walkRate*ownerWalkShare))
		if cost > limit {
			t.Errorf("%s: a node's answer claiming 2^53 entries charged %d, %.0f s of the client's share, want at most %d (a second)",
				c.proc, cost, float64(cost)/float64(walkRate*ownerWalkShare), limit)
		}
	}
}
