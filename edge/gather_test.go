package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// TestGatherIncompleteCounted: a meta query whose gather the timeout ends
// before a node answered gives its caller a partial answer, and the node
// counts it (Stats.GathersIncomplete, edgewamp_mesh_gathers_incomplete_total)
// so that an operator can tell a short wamp.session.count from a true
// one; gathers every node answered are not counted. b's control
// dispatcher is stalled, so b answers a's query only after a's
// gather_timeout.
func TestGatherIncompleteCounted(t *testing.T) {
	t.Parallel()
	nodes := clusterWith(t, func(o *Options) {
		o.PeerTimeout = 30 * time.Second // b sends no heartbeat while stalled: a keeps it
		if o.Name == "a" {
			o.GatherTimeout = 400 * time.Millisecond
		}
	}, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 60*time.Second)
	sa := a.dial(a.ws(), proto.JSON)
	sb := b.dial(b.rs(), proto.MsgPack) // b's one session
	count := func() int64 {
		t.Helper()
		res, err := sa.Call(ctx, "wamp.session.count", nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return toInt(res.Args[0])
	}
	// Both nodes answer: the count is whole (b's session arrives with the
	// directory, so wait for it), and nothing is counted.
	eventually(t, 10*time.Second, func() error {
		if n := count(); n != 2 {
			return fmt.Errorf("session.count %d, want 2", n)
		}
		return nil
	})
	if n := a.n.Stats().GathersIncomplete.Load(); n != 0 {
		t.Fatalf("GathersIncomplete %d after whole answers, want 0", n)
	}
	// Each heartbeat says how many peers its sender knows: b knows a, and
	// a has heard from every node b knows.
	eventually(t, 10*time.Second, func() error {
		if k := b.n.peers.view.Load(); len(k.names) != 1 || k.unheard != 0 {
			return fmt.Errorf("b's view %v, unheard %d", k.names, k.unheard)
		}
		if u := a.n.peers.view.Load().unheard; u != 0 {
			return fmt.Errorf("a's view: %d nodes unheard of, want 0", u)
		}
		return nil
	})

	release := stallControl(t, b, nil)
	// A partial answer is counted by the time the caller has it. (Asked
	// again should the first come back otherwise: a CI run under load
	// once read a count of 1 and nothing counted, as when a node asks no
	// other: a failure only if it lasts.)
	eventually(t, 10*time.Second, func() error {
		if n := count(); n != 1 {
			return fmt.Errorf("session.count %d with b stalled, want 1 (a's part only)", n)
		}
		if n := a.n.Stats().GathersIncomplete.Load(); n < 1 {
			return fmt.Errorf("GathersIncomplete %d after a partial answer, want at least 1 (peers of a: %v)", n, a.n.Peers())
		}
		return nil
	})
	// The caller can tell: RESULT.Details names the node left out.
	res, err := sa.Call(ctx, "wamp.session.count", nil, nil, nil)
	if err != nil || fmt.Sprint(res.Details["_edgewamp_partial"]) != "map[missing:[b] not_heard_from:false]" {
		t.Fatalf("session.count with b stalled: %v, details %v", err, res.Details)
	}

	// b answers again: whole answers, no more counted.
	release()
	eventually(t, 10*time.Second, func() error {
		if n := count(); n != 2 {
			return fmt.Errorf("session.count %d after the stall, want 2", n)
		}
		return nil
	})
	// The late answers of the stalled spell (b answers the queued query
	// once it runs again) may have come while the eventually above made
	// more partial calls; the last, whole one added nothing.
	got := a.n.Stats().GathersIncomplete.Load()
	if n := count(); n != 2 || a.n.Stats().GathersIncomplete.Load() != got {
		t.Fatalf("session.count %d, GathersIncomplete %d → %d after a whole answer", n, got, a.n.Stats().GathersIncomplete.Load())
	}

	// A kill of b's session while b cannot answer: not "no such session"
	// (the session is alive) but unavailable, naming b. The query waits in
	// b's queue; when b runs again it is too late to count (a's caller was
	// told the kill had not been done), so b does not carry it out
	// (clock.go) and counts it.
	lateBefore := b.r.MeshStats().LateQueries.Load()
	release = stallControl(t, b, nil)
	_, err = sa.Call(ctx, "wamp.session.kill", []any{sb.ID()}, nil, nil)
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URIUnavailable || len(we.Args) == 0 || !strings.Contains(fmt.Sprint(we.Args[0]), "node b did not answer") {
		t.Fatalf("kill of b's session with b stalled: %v, want %s naming node b", err, proto.URIUnavailable)
	}
	release()
	eventually(t, 10*time.Second, func() error {
		if n := b.r.MeshStats().LateQueries.Load(); n <= lateBefore {
			select {
			case <-sb.Done():
				return fmt.Errorf("b carried out the kill (LateQueries %d)", n)
			default:
			}
			return fmt.Errorf("b's LateQueries %d, want more than %d once it ran the late kill", n, lateBefore)
		}
		return nil
	})
	select {
	case <-sb.Done():
		t.Fatal("b carried out a kill its caller had been answered unavailable for")
	case <-time.After(300 * time.Millisecond):
	}
	// Asked again with b answering, the kill is done.
	if _, err := sa.Call(ctx, "wamp.session.kill", []any{sb.ID()}, nil, nil); err != nil {
		t.Fatalf("kill of b's session with b answering: %v", err)
	}
	select {
	case <-sb.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("b's session still alive 10 s after a kill b answered")
	}
}

// NATS routes are not transitive: two nodes that both reach a third but
// not each other exchange nothing. Each node here routes to the next only
// and advertises an address nobody listens on, so the cluster's gossip
// cannot link the others: a star (a and c route to b) and a ring of four
// (a→d, b→a, c→b, d→c: every node hears two peers, as many as each peer
// hears, so counts alone would not tell). A node knows which nodes its
// peers hear from their heartbeats: edgewamp_mesh_peers_unheard reads 1
// on every node that misses one, a warning names the missing routes, and a
// kill from a of a session on c says unavailable, not no_such_session,
// while the same kill from a node that hears c is carried out.
func TestMissingRouteReported(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		nodes   []string
		routeTo map[string]string // node → the one node it routes to ("" : none)
		unheard map[string]int64
		killer  string // a node that hears c
	}{
		{"star", []string{"b", "a", "c"}, map[string]string{"a": "b", "c": "b"}, map[string]int64{"a": 1, "b": 0, "c": 1}, "b"},
		{"ring", []string{"a", "b", "c", "d"}, map[string]string{"a": "d", "b": "a", "c": "b", "d": "c"}, map[string]int64{"a": 1, "b": 1, "c": 1, "d": 1}, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := &lockedBuf{}
			addr := map[string]string{}
			for _, name := range tc.nodes {
				addr[name] = edgetest.FreeAddr(t)
			}
			nodes := map[string]*tnode{}
			for _, name := range tc.nodes {
				nodes[name] = startNode(t, name, func(o *Options) {
					o.Heartbeat, o.PeerTimeout = 200*time.Millisecond, time.Second
					o.Logger = slog.New(slog.NewTextHandler(logs, nil))
					o.Cluster.Listen = addr[name]
					if to := tc.routeTo[name]; to != "" {
						o.Cluster.Routes = []string{"nats://" + addr[to]}
						o.Cluster.Advertise = edgetest.FreeAddr(t) // never listened on
					}
				})
			}
			eventually(t, 20*time.Second, func() error {
				for name, want := range tc.unheard {
					n := nodes[name].n
					if peers := len(n.Peers()); int64(peers) != int64(len(tc.nodes)-1)-want {
						return fmt.Errorf("%s sees %v", name, n.Peers())
					}
					if u := n.Stats().PeersUnheard.Load(); u != want {
						return fmt.Errorf("%s: PeersUnheard %d, want %d", name, u, want)
					}
					if want > 0 && !warned(logs.String(), name) {
						return fmt.Errorf("no warning of %s's about the missing routes yet", name)
					}
				}
				return nil
			})
			for name, want := range tc.unheard {
				if want == 0 && warned(logs.String(), name) {
					t.Errorf("%s, which hears every node, warned of missing routes", name)
				}
			}

			ctx := ctxT(t, 30*time.Second)
			a, c := nodes["a"], nodes["c"]
			sc := c.dial(c.ws(), proto.JSON)
			sa := a.dial(a.ws(), proto.JSON)
			_, err := sa.Call(ctx, "wamp.session.kill", []any{sc.ID()}, nil, nil)
			var we *client.Error
			if !errors.As(err, &we) || we.URI != proto.URIUnavailable || len(we.Args) == 0 || !strings.Contains(fmt.Sprint(we.Args[0]), "not heard from") {
				t.Fatalf("kill from a of a session on c, which a cannot hear: %v, want %s", err, proto.URIUnavailable)
			}
			k := nodes[tc.killer]
			sk := k.dial(k.ws(), proto.JSON)
			if _, err := sk.Call(ctx, "wamp.session.kill", []any{sc.ID()}, nil, nil); err != nil {
				t.Fatalf("kill from %s: %v", tc.killer, err)
			}
			select {
			case <-sc.Done():
			case <-time.After(10 * time.Second):
				t.Fatalf("c's session alive 10 s after %s killed it", tc.killer)
			}
		})
	}
}

// warned reports whether node name logged the missing-routes warning.
func warned(logs, name string) bool {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "the NATS routes between nodes are incomplete") && strings.Contains(line, " node="+name+" ") {
			return true
		}
	}
	return false
}

// A node does not run a meta query whose stamp says its asker stopped
// waiting; it runs one stamped by another life of the asker (a restarted
// node's queries may come before its first heartbeat, and its clock is
// not the one this node knows), one of a release before the stamps, and
// a fresh one.
func TestLateQueryRefusedByStamp(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 60*time.Second)
	nc, err := clientPort(b.n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	queries, err := nc.SubscribeSync(subjQuery)
	if err != nil {
		t.Fatal(err)
	}
	inbox := nodeInbox("a")
	answers, err := nc.SubscribeSync(inbox + ".a.999999.>")
	if err != nil {
		t.Fatal(err)
	}
	oldAnswers, err := nc.SubscribeSync(inbox + ".a.999999")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// A real query of a's, to send again under other reply subjects.
	if _, err := a.dial(a.ws(), proto.JSON).Call(ctx, "wamp.session.count", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	q, err := queries.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, boot, ok := queryStamp(q.Reply[len(inbox):]); !ok || boot != a.n.boot {
		t.Fatalf("a's query's reply subject %q carries no stamp of a's life", q.Reply)
	}
	// ran sends the query as from a with reply and reports whether b ran
	// it (an answer) or refused it (edgewamp.mesh.not_answered).
	ran := func(reply string, sub *nats.Subscription) bool {
		t.Helper()
		if err := nc.PublishRequest(subjQuery, reply, q.Data); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no answer to %s: %v", reply, err)
		}
		v, err := proto.DecodeValue(proto.Raw{Ser: proto.MsgPack, B: m.Data})
		l, _ := v.([]any)
		if err != nil || len(l) < 2 {
			t.Fatalf("answer to %s: %v %v", reply, v, err)
		}
		if l[0] == false && (len(l) != 3 || l[1] != "edgewamp.mesh.not_answered" || l[2] != "b") {
			t.Fatalf("answer to %s: %v, want a result or not_answered by b", reply, l)
		}
		return l[0] == true
	}
	stamped := func(stamp int64, boot uint64) string {
		return fmt.Sprintf("%s.a.999999.%d.500.%x", inbox, stamp, boot)
	}
	late := func() uint64 { return b.r.MeshStats().LateQueries.Load() }
	before := late()
	if !ran(stamped(clockNow(), a.n.boot), answers) {
		t.Fatal("b refused a fresh query of a's")
	}
	if ran(stamped(clockNow()-int64(10*time.Second), a.n.boot), answers) || late() != before+1 {
		t.Fatalf("b ran a query of a's sent 10 s ago (LateQueries %d → %d)", before, late())
	}
	if !ran(stamped(clockNow()-int64(10*time.Second), a.n.boot+2), answers) {
		t.Fatal("b refused a query stamped by another life of a")
	}
	if !ran(inbox+".a.999999", oldAnswers) {
		t.Fatal("b refused a query of a release before the stamps")
	}
	if n := late(); n != before+1 {
		t.Fatalf("LateQueries %d, want %d", n, before+1)
	}
}

// The answers a node's gathers hold are bounded in bytes
// (Options.MaxGathered): a node answers get_retained with up to 4 MiB,
// and a node runs up to 1,024 gathers at once. b and c each answer a's
// get_retained with 200 KiB of retained events; with room for one answer,
// a keeps the first, drops the second (counted, its node counted among
// those that did not answer), and the subscriber gets one node's retained
// events. The budget comes back when the gather ends: later gathers
// within it are whole.
func TestGatherAnswersBudget(t *testing.T) {
	t.Parallel()
	nodes := clusterWith(t, func(o *Options) {
		o.GatherTimeout = 10 * time.Second // the answers are large, the machine may be loaded
		if o.Name == "a" {
			o.MaxGathered = 250 << 10
		}
	}, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxT(t, 60*time.Second)
	big := strings.Repeat("x", 100<<10)
	for _, tn := range []*tnode{b, c} {
		p := tn.dial(tn.ws(), proto.JSON)
		for i := 0; i < 2; i++ {
			if err := p.Publish(ctx, fmt.Sprintf("com.big.%s%d", tn.name, i), []any{big}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
		}
		// A meta call's query leaves the node after its events: once it
		// is answered, NATS has routed them, before a has any interest in
		// them (an event that reached a after its SUBSCRIBE was kept
		// there as a retained copy, and delivered with the gather's).
		if _, err := p.Call(ctx, "wamp.session.count", nil, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	sub := a.dial(a.ws(), proto.MsgPack)
	retained := func(topic, match string, want int) []string {
		t.Helper()
		got := make(chan string, 8)
		if _, err := sub.Subscribe(ctx, topic, func(e *client.Event) {
			if e.Retained {
				got <- e.Topic
			}
		}, &client.SubscribeOptions{Match: match, GetRetained: true}); err != nil {
			t.Fatal(err)
		}
		var topics []string
		for len(topics) < want {
			select {
			case tp := <-got:
				topics = append(topics, tp)
			case <-time.After(10 * time.Second):
				t.Fatalf("retained events of %s: %v, want %d", topic, topics, want)
			}
		}
		select {
		case tp := <-got:
			t.Fatalf("retained events of %s: %v and %s, want %d", topic, topics, tp, want)
		case <-time.After(500 * time.Millisecond):
		}
		sort.Strings(topics)
		return topics
	}
	topics := retained("com.big.", "prefix", 2)
	if one := fmt.Sprint(topics); one != "[com.big.b0 com.big.b1]" && one != "[com.big.c0 com.big.c1]" {
		t.Fatalf("retained events %v, want both of one node's", topics)
	}
	if n := a.n.Stats().GatherAnswersDropped.Load(); n != 1 {
		t.Fatalf("GatherAnswersDropped %d, want 1", n)
	}
	// (Given back right after the gather hands its answers over.)
	eventually(t, 5*time.Second, func() error {
		a.n.gmu.Lock()
		held := a.n.gBytes
		a.n.gmu.Unlock()
		if held != 0 {
			return fmt.Errorf("gathers hold %d bytes after they ended, want 0", held)
		}
		return nil
	})
	// Given back: 100 KiB answers fit, one after the other.
	for _, topic := range []string{"com.big.b0", "com.big.c1"} {
		if got := retained(topic, "exact", 1); got[0] != topic {
			t.Fatalf("retained event of %s: %v", topic, got)
		}
	}
	if n := a.n.Stats().GatherAnswersDropped.Load(); n != 1 {
		t.Fatalf("GatherAnswersDropped %d after gathers within the budget, want 1", n)
	}
}
