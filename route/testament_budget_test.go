package route

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestTestamentBytesBounded: testaments live as long as their sessions,
// and each session could hold 128 of 64 KiB (8 MiB) with nothing counting
// them across sessions, so one address's connections (1,024 by default)
// could make the router hold 8 GiB. Config.MaxTestamentBytes now bounds
// all sessions' testaments, and one client address (or authid) to a
// quarter of it: past either, add_testament gets wamp.error.unavailable;
// another address still adds its own; a flush or the session's end gives
// the bytes back.
func TestTestamentBytesBounded(t *testing.T) {
	const max = 1 << 20
	e := newEnv(t, 2, func(c *Config) { c.MaxTestamentBytes = max })
	payload := []any{strings.Repeat("w", 60<<10)}
	var all []*tc
	joinFrom := func(addr string, n int) *tc {
		c := e.connectFrom(n%2, proto.MsgPack, fmt.Sprintf("%s:%d", addr, 40000+n))
		c.hello("realm1", allFeatures, nil)
		c.id = c.expect(proto.CodeWelcome).ID
		all = append(all, c)
		return c
	}
	// add adds testaments until one is refused (or limit tries), and
	// returns how many were taken and the refusal's URI.
	add := func(c *tc, limit int) (int, string) {
		for i := 0; i < limit; i++ {
			req := c.call("wamp.session.add_testament", nil, []any{"com.will", payload}, nil)
			m := c.recv()
			if m.Request != req {
				t.Fatalf("add_testament: %s", describe(m))
			}
			if m.Type == proto.CodeError {
				return i, string(m.URI)
			}
		}
		return limit, ""
	}
	// One address, many sessions: a quarter of the bound in all.
	var fromA []*tc
	taken := 0
	for n := 0; n < 4; n++ {
		c := joinFrom("10.0.0.1", n)
		fromA = append(fromA, c)
		k, uri := add(c, 20)
		taken += k
		if uri != "" && uri != proto.URIUnavailable {
			t.Fatalf("a refused add_testament got %s, want %s", uri, proto.URIUnavailable)
		}
	}
	if quarter := max / 4 / (60 << 10); taken > quarter {
		t.Fatalf("one address's 4 sessions added %d testaments of 60 KiB (%d KiB): more than its quarter of %d KiB", taken, taken*60, max>>10)
	}
	if taken == 0 {
		t.Fatal("no testament taken")
	}
	// Another address is not refused for the first one's.
	b := joinFrom("10.0.0.2", 10)
	if k, uri := add(b, 1); k != 1 {
		t.Fatalf("another address's first testament refused: %s", uri)
	}
	// Four more addresses fill the router's bound.
	total := taken + 1
	for n := 0; n < 4; n++ {
		k, _ := add(joinFrom(fmt.Sprintf("10.0.1.%d", n), 20+n), 20)
		total += k
	}
	if total*(60<<10) > max {
		t.Fatalf("the router took %d testaments of 60 KiB (%d KiB), more than its %d KiB", total, total*60, max>>10)
	}
	if st := e.r.Stats(); st.TestamentsRefused == 0 || st.TestamentBytes > max {
		t.Fatalf("stats: %d refused, %d bytes held (bound %d)", st.TestamentsRefused, st.TestamentBytes, max)
	}
	// A flush and the sessions' end give the bytes back: the first
	// address adds again.
	fromA[0].callMeta("wamp.session.flush_testaments", nil, nil)
	for _, c := range fromA[1:] {
		c.drop()
	}
	e.sync()
	if k, uri := add(joinFrom("10.0.0.1", 30), 1); k != 1 {
		t.Fatalf("after its sessions flushed and left, the address's testament was refused: %s", uri)
	}
	// Every session gone (their testaments published): nothing counted.
	for _, c := range all {
		if !c.peer.closed.Load() {
			c.drop()
		}
	}
	e.sync()
	if n := e.r.Stats().TestamentBytes; n != 0 {
		t.Fatalf("every session gone, testaments still count %d bytes", n)
	}
}
