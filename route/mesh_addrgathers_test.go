package route

import (
	"strconv"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A node takes at most 1,024 gathers at a time (edge) and a session 16:
// 64 sessions from one address, each with 16 meta calls waiting for a
// node that answers slowly, held every gather of the node, and every
// other session's gathered meta calls were refused. One address's
// sessions hold at most maxAddrGathers now; another address's calls still
// gather, and the address's own are refused only past the bound.
func TestMeshGathersBoundedPerAddress(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	e := es[0]
	const sessions = maxAddrGathers/maxSessionGathers + 4
	var crowd []*tc
	for i := range sessions {
		crowd = append(crowd, e.joinFrom("192.0.2.7:"+strconv.Itoa(40000+i)))
	}
	other := e.joinFrom("198.51.100.9:5000")
	mm.nodes[0].gatherHold.Store(true) // node B answers slowly: the gathers stay under way
	for _, c := range crowd {
		for range maxSessionGathers {
			c.call("wamp.session.get", nil, []any{int64(12345)}, nil) // on no node
		}
	}
	mm.sync()
	held := mm.nodes[0].gathers.Load()
	refused := 0
	for _, c := range crowd {
		_, r := answeredAtOnce(c)
		refused += r
	}
	t.Logf("%d sessions of one address, %d gets each waiting for a slow node: %d gathers under way, %d calls refused", sessions, maxSessionGathers, held, refused)
	if held > maxAddrGathers {
		t.Fatalf("%d sessions of one address hold %d of the node's gathers; want at most %d", sessions, held, maxAddrGathers)
	}
	if int(held)+refused != sessions*maxSessionGathers {
		t.Fatalf("%d gathers under way and %d refused of %d calls", held, refused, sessions*maxSessionGathers)
	}
	// Another address's call still gathers.
	req := other.call("wamp.session.get", nil, []any{int64(12345)}, nil)
	mm.sync()
	if got := mm.nodes[0].gathers.Load(); got != held+1 {
		t.Fatalf("another address's get: %d gathers under way, want %d", got, held+1)
	}
	// A get_retained SUBSCRIBE of the address waits for one of its
	// gathers to end (TestMeshGetRetainedPastAddressBoundWaits).
	other.publish("com.kept", map[string]any{"retain": true, "acknowledge": true}, []any{"here"}, nil)
	other.expect(proto.CodePublished)
	last := crowd[len(crowd)-1]
	last.subscribeRetained("com.kept")
	last.expect(proto.CodeSubscribed)
	mm.sync()
	if got := mm.nodes[0].gathers.Load(); got != held+1 {
		t.Fatalf("a get_retained SUBSCRIBE of the full address started a gather: %d under way, want %d", got, held+1)
	}
	// B answers: every call under way is answered, and the address's
	// count goes with them.
	mm.nodes[0].releaseGathers()
	mm.sync()
	answered, kept := 0, 0
	for _, c := range crowd {
		for len(c.peer.in) > 0 {
			switch m := <-c.peer.in; m.Type {
			case proto.CodeResult, proto.CodeError:
				answered++
			case proto.CodeEvent:
				if c == last && len(argsOf(m)) == 1 && argsOf(m)[0] == "here" {
					kept++
				}
			}
		}
	}
	if answered != int(held) {
		t.Fatalf("%d of the %d gathered calls answered once B answered", answered, held)
	}
	for round := 0; kept == 0 && round < 100; round++ { // its gather after the wake-up
		mm.sync()
		for len(last.peer.in) > 0 {
			if m := <-last.peer.in; m.Type == proto.CodeEvent && len(argsOf(m)) == 1 && argsOf(m)[0] == "here" {
				kept++
			}
		}
	}
	if kept != 1 {
		t.Fatalf("the waiting get_retained SUBSCRIBE got the retained event %d times, want once", kept)
	}
	other.expectError(proto.CodeCall, req, proto.URINoSuchSession)
	// The address's count went with its gathers: its sessions hold the
	// whole bound again.
	mm.nodes[0].gatherHold.Store(true)
	for _, c := range crowd {
		for range maxSessionGathers {
			c.call("wamp.session.get", nil, []any{int64(12345)}, nil)
		}
	}
	mm.sync()
	if got := mm.nodes[0].gathers.Load(); got != held {
		t.Fatalf("the address's gets once its gathers ended: %d gathers under way, want %d", got, held)
	}
	mm.nodes[0].releaseGathers()
	mm.sync()
}
