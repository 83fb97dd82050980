package route

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// countingAuthorizer allows everything and counts the decisions asked of
// it on PUBLISHes to "cmd." topics.
type countingAuthorizer struct{ cmd atomic.Int64 }

func (a *countingAuthorizer) Authorize(role string, act Action, uri string) bool {
	if act == ActionPublish && strings.HasPrefix(uri, "cmd.") {
		a.cmd.Add(1)
	}
	return true
}

// A session receiving events on more topics than its authorization cache
// holds (a prefix subscription over more device topics than its bound)
// refills the cache
// as it goes; its other decisions, on the few topics it publishes to, are
// kept, as they were when each action had a cache of its own: dropping
// the whole cache each time the events filled it had every PUBLISH of
// the session decided again.
func TestAuthzCacheKeepsOtherActionsOfAThrashingSubscriber(t *testing.T) {
	az := &countingAuthorizer{}
	e := newEnv(t, 1, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "realm1", Anonymous: true, AnonymousRole: "svc", Authorizer: az}}
	})
	s := e.join(proto.JSON)
	s.subscribe("dev.", map[string]any{"match": "prefix"})
	p := e.join(proto.JSON)
	const topics, cmds = maxCachedDecisions + 128, 10 // topics a multiple of cmds
	round := func() int64 {
		before := az.cmd.Load()
		for i := range topics {
			p.publish(fmt.Sprintf("dev.%d.telemetry", i), nil, nil, nil)
			s.expect(proto.CodeEvent)
			if i%(topics/cmds) == 0 {
				s.publish(fmt.Sprintf("cmd.%d", i), map[string]any{"acknowledge": true}, nil, nil)
				s.expect(proto.CodePublished)
			}
		}
		e.sync()
		return az.cmd.Load() - before
	}
	first := round()
	var later int64
	for range 3 {
		later += round()
	}
	t.Logf("PUBLISH decisions: %d in the first round, %d in the next three", first, later)
	if first != cmds || later != 0 {
		t.Fatalf("a subscriber receiving %d topics and publishing to %d: %d PUBLISH decisions in the first round, %d in the next three, want %d and 0",
			topics, cmds, first, later, cmds)
	}
}
