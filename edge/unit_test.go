package edge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
	"github.com/nats-io/nats.go"
)

func TestSubjects(t *testing.T) {
	cases := []struct {
		match proto.Match
		uri   string
		want  string
		hits  []string // topics whose event subject this interest matches
	}{
		{proto.MatchExact, "com.app.topic", "ew.e.realm1.com.app.topic", []string{"com.app.topic"}},
		{proto.MatchWildcard, "com..topic", "ew.e.realm1.com.*.topic", []string{"com.x.topic"}},
		{proto.MatchWildcard, "com.app.", "ew.e.realm1.com.app.*", []string{"com.app.z"}},
		{proto.MatchPrefix, "com.app.top", "ew.e.realm1.com.app.>", []string{"com.app.topic", "com.app.top", "com.app.top.x"}},
		{proto.MatchPrefix, "com.app.", "ew.e.realm1.com.app.>", []string{"com.app.x"}},
		{proto.MatchPrefix, "com", "ew.e.realm1.>", []string{"com", "comx.y"}},
	}
	for _, c := range cases {
		if got := interestSubject("ew.e.", "realm1", c.match, c.uri); got != c.want {
			t.Errorf("interestSubject(%v, %q) = %q, want %q", c.match, c.uri, got, c.want)
		}
		for _, topic := range c.hits {
			subj := string(eventSubject(nil, "ew.e.", "realm1", []byte(topic)))
			if !subjectMatches(c.want, subj) {
				t.Errorf("%v %q: event subject %q of %q does not match %q", c.match, c.uri, subj, topic, c.want)
			}
		}
	}
	// Characters NATS forbids or treats specially are escaped, reversibly,
	// into one plain token each; a realm with dots is one token.
	for _, comp := range []string{"*", ">", "$sys", "é", "a~b", "a b", "com.example.realm"} {
		tok := string(appendToken(nil, comp))
		if tok[0] != '~' || !plainToken(tok[1:]) {
			t.Errorf("%q escaped as %q", comp, tok)
			continue
		}
		dec, err := b32.DecodeString(strings.ToUpper(tok[1:]))
		if err != nil || string(dec) != comp {
			t.Errorf("%q escaped as %q, which decodes to %q (%v)", comp, tok, dec, err)
		}
	}
	if got := len(split(string(eventSubject(nil, "ew.e.", "com.example.realm", []byte("a.b"))))); got != 5 {
		t.Errorf("a realm with dots is not one token (%d tokens)", got)
	}
}

// subjectMatches is NATS's rule for a subscription subject and a
// published subject.
func subjectMatches(sub, subj string) bool {
	st, pt := split(sub), split(subj)
	for i, s := range st {
		if s == ">" {
			return len(pt) > i
		}
		if i >= len(pt) || s != "*" && s != pt[i] {
			return false
		}
	}
	return len(st) == len(pt)
}

func split(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func TestDedupRing(t *testing.T) {
	var d dedupRing
	for i := uint64(1); i <= 3*dedupWindow; i++ {
		if d.seen(i) {
			t.Fatalf("%d seen before it came", i)
		}
		if !d.seen(i) {
			t.Fatalf("%d not remembered", i)
		}
	}
	if len(d.set) != dedupWindow {
		t.Fatalf("the ring holds %d ids, want at most %d", len(d.set), dedupWindow)
	}
}

// Gathers are bounded: past maxGathers in flight, Gather refuses (the
// meta procedure is then answered from this node alone), and each ends by
// GatherTimeout even when no node answers.
func TestGatherBound(t *testing.T) {
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The timeout outlasts making the 1,024 gathers: at 200 ms, a CI run
	// under -race at load 30 saw the first ones end before the last was
	// made, and the gather past the bound was taken.
	n, err := New(Options{Router: r, Name: "g", NatsURL: "nats://127.0.0.1:1", GatherTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A peer that will never answer.
	n.peers.byName["silent"] = &peer{idx: 1, name: "silent", msgSubj: nodeSubject("silent", "m")}
	n.peers.publish()
	done := make(chan int, maxGathers)
	for i := 0; i < maxGathers; i++ {
		if err := n.Gather([]byte("q"), func(a [][]byte, _ []string) { done <- len(a) }); err != nil {
			t.Fatalf("gather %d: %v", i, err)
		}
	}
	if err := n.Gather([]byte("q"), func([][]byte, []string) {}); !errors.Is(err, ErrBusy) {
		t.Fatalf("gather past the bound: %v, want ErrBusy", err)
	}
	for i := 0; i < maxGathers; i++ {
		select {
		case k := <-done:
			if k != 0 {
				t.Fatalf("%d answers from nowhere", k)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("gather %d never ended", i)
		}
	}
	if err := n.Gather([]byte("q"), func([][]byte, []string) {}); err != nil {
		t.Fatalf("gather after the others ended: %v", err)
	}
	// Each of them ended without the silent node's answer: counted.
	if c := n.Stats().GathersIncomplete.Load(); c != maxGathers {
		t.Fatalf("GathersIncomplete %d after %d gathers the silent node never answered", c, maxGathers)
	}
}

// A gather sent in the node's first heartbeats, before it knows whom to
// wait for, ends by its timeout; without the answer of a node it knows by
// then, it is counted as incomplete all the same (it was not: it had no
// list of the nodes it waited for).
func TestGatherIncompleteInFirstHeartbeats(t *testing.T) {
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := New(Options{Router: r, Name: "g", NatsURL: "nats://127.0.0.1:1", GatherTimeout: 100 * time.Millisecond, Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n.markStarted() // just started: it waits two heartbeats before it trusts its view
	n.peers.byName["silent"] = &peer{idx: 1, name: "silent", msgSubj: nodeSubject("silent", "m")}
	n.peers.publish()
	done := make(chan int, 1)
	if err := n.Gather([]byte("q"), func(a [][]byte, _ []string) { done <- len(a) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the gather never ended")
	}
	if c := n.Stats().GathersIncomplete.Load(); c != 1 {
		t.Fatalf("GathersIncomplete %d after a gather of the first heartbeats that the silent node never answered, want 1", c)
	}
}

// A route port that is taken makes Start fail at once, naming the cause,
// instead of a node running without its cluster listener.
func TestStartRefusesATakenClusterPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	o := Options{Router: r, Name: "taken", Logger: testLogger(t)}
	o.Cluster.Listen = ln.Addr().String()
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = n.Start()
	if err == nil {
		n.Shutdown(context.Background())
		t.Fatal("Start succeeded on a taken route port")
	}
	if !strings.Contains(err.Error(), "router port") || time.Since(start) > 10*time.Second {
		t.Fatalf("Start: %v after %v; want the route listener's error, at once", err, time.Since(start))
	}
}

// A gather ends early only once every node it was sent to has answered: an
// answer from a node that joined meanwhile is kept but does not stand in
// for a missing one. In its first PeerTimeout a node waits for the
// timeout, as its view of the others may still be short.
func TestGatherWaitsForTheNodesItAsked(t *testing.T) {
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := New(Options{Router: r, Name: "g", NatsURL: "nats://127.0.0.1:1", GatherTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	n.peers.byName["b"] = &peer{idx: 1, name: "b", msgSubj: nodeSubject("b", "m")}
	n.peers.publish()
	gather := func() (uint64, chan int) {
		done := make(chan int, 1)
		if err := n.Gather([]byte("q"), func(a [][]byte, _ []string) { done <- len(a) }); err != nil {
			t.Fatal(err)
		}
		n.gmu.Lock()
		defer n.gmu.Unlock()
		return n.gseq, done
	}
	ended := func(done chan int) (int, bool) {
		select {
		case k := <-done:
			return k, true
		case <-time.After(50 * time.Millisecond):
			return 0, false
		}
	}
	id, done := gather()
	n.answered(id, "newcomer", []byte("x"))
	if k, ok := ended(done); ok {
		t.Fatalf("the gather ended with %d answers, from a node it did not ask, before b answered", k)
	}
	n.answered(id, "b", []byte("y"))
	if k, ok := ended(done); !ok || k != 2 {
		t.Fatalf("after b's answer: ended %v with %d answers, want both", ok, k)
	}

	// A node just started: b's answer does not end it before two rounds
	// of heartbeats; then the nodes it knows by then do (c joined and
	// answered meanwhile: so do b and c).
	n.opts.Heartbeat = 200 * time.Millisecond
	n.markStarted()
	id, done = gather()
	n.answered(id, "b", []byte("y"))
	if _, ok := ended(done); ok {
		t.Fatal("a gather of a node just started ended before it could have heard the others")
	}
	n.peers.byName["c"] = &peer{idx: 2, name: "c", msgSubj: nodeSubject("c", "m")}
	n.peers.publish()
	n.answered(id, "c", []byte("z"))
	select {
	case k := <-done:
		if k != 2 {
			t.Fatalf("%d answers, want 2", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the gather never ended")
	}
	// The same, with d known by then but silent: the timeout ends it.
	n.opts.GatherTimeout = 600 * time.Millisecond
	n.markStarted()
	id, done = gather()
	n.peers.byName["d"] = &peer{idx: 3, name: "d", msgSubj: nodeSubject("d", "m")}
	n.peers.publish()
	n.answered(id, "b", []byte("y"))
	n.answered(id, "c", []byte("z"))
	start := time.Now()
	select {
	case k := <-done:
		if k != 2 || time.Since(start) < 550*time.Millisecond {
			t.Fatalf("%d answers after %v: ended without d's answer before the timeout", k, time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the gather never ended")
	}
}

// A gather tells route which nodes' answers it went without: those it
// waited for that its timeout ended it without, and one "" for each node a
// peer's heartbeat says it knows and this node has not heard from (its
// routes to it still forming): route then answers "not found" with
// wamp.error.unavailable. Heartbeats of a release that did not send the
// count, or with an absurd one, count for nothing.
func TestGatherReportsMissingNodes(t *testing.T) {
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	newNode := func(name string, peers ...string) *Node {
		n, err := New(Options{Router: r, Name: name, NatsURL: "nats://127.0.0.1:1", GatherTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range peers {
			n.peers.byName[p] = &peer{idx: route.MeshNode(i + 1), name: p, msgSubj: nodeSubject(p, "m"), knows: -1, boot: 7}
		}
		n.peers.publish()
		n.boot = 7 // one life each: a heartbeat of another boot is a restart
		return n
	}
	g := newNode("g", "b", "c")
	heard := func(from *Node) {
		t.Helper()
		from.dmu.Lock()
		data := from.heartbeatData()
		from.dmu.Unlock()
		g.onHeartbeat(&nats.Msg{Subject: subjHeartbeat, Reply: nodeInbox(from.opts.Name), Data: data})
	}
	gather := func(answer ...string) []string {
		t.Helper()
		done := make(chan []string, 1)
		if err := g.Gather([]byte("q"), func(_ [][]byte, missing []string) { done <- missing }); err != nil {
			t.Fatal(err)
		}
		g.gmu.Lock()
		id := g.gseq
		g.gmu.Unlock()
		for _, from := range answer {
			g.answered(id, from, []byte("x"))
		}
		select {
		case m := <-done:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("the gather never ended")
			return nil
		}
	}
	check := func(got []string, want ...string) {
		t.Helper()
		if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Fatalf("missing %q, want %q", got, want)
		}
	}

	check(gather("b", "c")) // whole
	check(gather("b"), "c") // c silent: the timeout names it
	before := g.Stats().GathersIncomplete.Load()

	// b knows g, c and d; g has not heard from d.
	heard(newNode("b", "g", "c", "d"))
	if u := g.peers.view.Load().unheard; u != 1 {
		t.Fatalf("unheard %d after b said it knows 3 peers, g 2, want 1", u)
	}
	check(gather("b", "c"), "")
	check(gather("b"), "c", "")
	// Counted once: the gather its timeout ended; the nodes not heard
	// from are PeersUnheard's (checkUnheard), not the timeout's.
	if n := g.Stats().GathersIncomplete.Load(); n != before+1 {
		t.Fatalf("GathersIncomplete %d → %d after a gather the timeout ended and one short of d", before, n)
	}
	// b's routes to d are gone, or g heard from d: whole again.
	heard(newNode("b", "g", "c"))
	check(gather("b", "c"))

	// Names, not numbers: b has not heard g yet (its count leaves g out)
	// and knows c and d; g knows b and c: as many, but d is not one of
	// them.
	heard(newNode("b", "c", "d"))
	if u := g.peers.view.Load().unheard; u != 1 {
		t.Fatalf("unheard %d after b, not knowing g, named c and d; g knows b and c; want 1", u)
	}
	heard(newNode("b", "g", "c"))

	// d, which both hear, dies: g drops it before b does, whose heartbeat
	// still counts it. A node just dropped offsets the peers' counts for
	// a grace period (not a node g cannot hear: a node that died); past
	// it, a peer that still counts d hears it and g does not.
	g.peers.byName["d"] = &peer{idx: 9, name: "d", msgSubj: nodeSubject("d", "m"), knows: -1, boot: 7}
	g.peers.publish()
	heard(newNode("b", "g", "c", "d"))
	g.dropPeer(g.peers.byName["d"])
	if u := g.peers.view.Load().unheard; u != 0 {
		t.Fatalf("unheard %d just after g dropped d, which b still counts", u)
	}
	check(gather("b", "c"))
	g.checkUnheard(time.Now().Add(g.peers.goneGrace))
	if u := g.peers.view.Load().unheard; u != 1 {
		t.Fatalf("unheard %d once the grace passed with b still counting d, want 1", u)
	}
	heard(newNode("b", "g", "c"))

	// Between lists, a heartbeat carries the set's digest: g keeps b's
	// list while it matches. When b's set changes and g misses the list
	// that says so (at most once), the digest no longer matches: the count
	// alone, until b's next list (every hbListEvery heartbeats).
	b := newNode("b", "g", "c", "d")
	heard(b)
	heard(b)
	if p := g.peers.byName["b"]; p.knowsSet == nil || g.peers.view.Load().unheard != 1 {
		t.Fatalf("after b's list and digest: set %v, unheard %d, want d", p.knowsSet, g.peers.view.Load().unheard)
	}
	b.peers.byName["e"] = &peer{idx: 5, name: "e", msgSubj: nodeSubject("e", "m"), knows: -1, boot: 7}
	b.peers.publish()
	b.dmu.Lock()
	b.heartbeatData() // the list naming e: lost
	b.dmu.Unlock()
	heard(b)
	if p := g.peers.byName["b"]; p.knowsSet != nil || g.peers.view.Load().unheard != 2 {
		t.Fatalf("after a digest that does not match the kept list: set %v, unheard %d, want the count alone (2)", p.knowsSet, g.peers.view.Load().unheard)
	}
	for range hbListEvery {
		heard(b)
	}
	if p := g.peers.byName["b"]; len(p.knowsSet) != 4 || g.peers.view.Load().unheard != 2 {
		t.Fatalf("after %d more heartbeats: set %v, unheard %d, want b's list again (d and e)", hbListEvery, p.knowsSet, g.peers.view.Load().unheard)
	}
	heard(newNode("b", "g", "c"))

	// Past maxHashedPeers, a count alone: b says it knows 3 more nodes
	// than g does.
	var many []string
	for i := range maxHashedPeers + 3 {
		many = append(many, fmt.Sprintf("n%d", i))
	}
	big := newNode("b", many...)
	big.dmu.Lock()
	data := big.heartbeatData()
	big.dmu.Unlock()
	g.onHeartbeat(&nats.Msg{Subject: subjHeartbeat, Reply: nodeInbox("b"), Data: data})
	if v := g.peers.view.Load(); g.peers.byName["b"].knowsSet != nil || v.unheard != len(many)-2 {
		t.Fatalf("b named %d peers: unheard %d (set %v), want %d by the count alone", len(many), v.unheard, g.peers.byName["b"].knowsSet != nil, len(many)-2)
	}
	// An older release's heartbeat (no count, no names) from the same b:
	// b tells nothing of its peers any more. And an absurd count from c.
	old := newNode("b")
	old.meshVer = 0 // ends after the directory version...
	old.dmu.Lock()
	data = old.heartbeatData()
	old.dmu.Unlock()
	data = binary.AppendUvarint(data, meshVersion) // ...then the version, and nothing more
	g.onHeartbeat(&nats.Msg{Subject: subjHeartbeat, Reply: nodeInbox("b"), Data: data})
	if p := g.peers.byName["b"]; p == nil || p.knows != -1 || p.knowsSet != nil {
		t.Fatalf("after an older release's heartbeat, b: %+v", p)
	}
	if u := g.peers.view.Load().unheard; u != 0 {
		t.Fatalf("unheard %d after an older release's heartbeat replaced b's count", u)
	}
	var absurd wr
	absurd = append(absurd, data...)
	absurd.uv(maxKnows + 1)
	g.onHeartbeat(&nats.Msg{Subject: subjHeartbeat, Reply: nodeInbox("c"), Data: absurd})
	if u := g.peers.view.Load().unheard; u != 0 || g.peers.byName["c"].knows != -1 {
		t.Fatalf("unheard %d, c's count %d after an absurd count", u, g.peers.byName["c"].knows)
	}
	check(gather("b", "c"))

	// A node just started that has routes to dial but has heard from no
	// node: one node unheard of, for its first PeerTimeout.
	g = newNode("y")
	g.opts.Heartbeat, g.opts.PeerTimeout = time.Millisecond, 300*time.Millisecond
	g.markStarted()
	check(gather()) // no routes: a node alone
	g.opts.Cluster.Routes = []string{"nats://127.0.0.1:1"}
	time.Sleep(5 * time.Millisecond) // past its first two heartbeats
	check(gather(), "")
	time.Sleep(300 * time.Millisecond)
	check(gather()) // its peer timeout passed: alone
}
