package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A get_retained SUBSCRIBE to a pattern delivers the retained events of
// the topics it matches oldest first, as they were published (WAMP orders
// one publisher's events for a subscriber): they came in the order of the
// realm's map, a new one at every SUBSCRIBE, so that a handler keeping a
// pattern's latest event (a device's last state change under
// com.dev.<id>.) took whichever came last for it.
func TestRetainedPatternInPublicationOrder(t *testing.T) {
	e := newEnv(t, 2, nil)
	pub := e.join(proto.JSON)
	const n = 8
	for i := range n {
		pub.publish(fmt.Sprintf("com.o.t%d", (i*5)%n), map[string]any{"retain": true, "acknowledge": true}, []any{i}, nil)
		pub.expect(proto.CodePublished)
	}
	for try := range 20 {
		s := e.join(proto.JSON)
		s.subscribe("com.o.", map[string]any{"match": "prefix", "get_retained": true})
		var got []int64
		for range n {
			got = append(got, argsOf(s.expect(proto.CodeEvent))[0].(int64))
		}
		for i := range got {
			if got[i] != int64(i) {
				t.Fatalf("subscriber %d got the retained events %v, want them in publication order", try, got)
			}
		}
	}
}
