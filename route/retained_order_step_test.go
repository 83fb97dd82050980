package route

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A pattern's get_retained delivers one publisher's retained events in
// publication order when the node's wall clock steps back between them
// (NTP's first sync on a board without a real-time clock, date -s): the
// order is the events' stamps (retainedOrder), and retainStamp kept them
// later than the topic's own older event only, so an event on another
// topic published after the step was stamped, and delivered, before the
// ones published before it.
func TestRetainedPatternOrderAcrossClockStepBack(t *testing.T) {
	e, clk, _ := newStepEnv(t, nil)
	pub := e.join(proto.JSON)
	const n = 4
	for i := range n {
		if i == n/2 {
			clk.step.Add(int64(-time.Minute))
		}
		pub.publish(fmt.Sprintf("com.o.t%d", i), map[string]any{"retain": true, "acknowledge": true}, []any{i}, nil)
		pub.expect(proto.CodePublished)
	}
	s := e.join(proto.JSON)
	s.subscribe("com.o.", map[string]any{"match": "prefix", "get_retained": true})
	var got []int64
	for range n {
		got = append(got, argsOf(s.expect(proto.CodeEvent))[0].(int64))
	}
	for i := range got {
		if got[i] != int64(i) {
			t.Fatalf("got the retained events %v after the clock stepped back a minute, want them in publication order", got)
		}
	}
}
