package edge

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
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
	n, err := New(Options{Router: r, Name: "g", NatsURL: "nats://127.0.0.1:1", GatherTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// A peer that will never answer.
	n.peers.byName["silent"] = &peer{idx: 1, name: "silent", msgSubj: nodeSubject("silent", "m")}
	n.peers.publish()
	done := make(chan int, maxGathers)
	for i := 0; i < maxGathers; i++ {
		if err := n.Gather([]byte("q"), func(a [][]byte) { done <- len(a) }); err != nil {
			t.Fatalf("gather %d: %v", i, err)
		}
	}
	if err := n.Gather([]byte("q"), func([][]byte) {}); !errors.Is(err, ErrBusy) {
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
	if err := n.Gather([]byte("q"), func([][]byte) {}); err != nil {
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
	n.startedAt.Store(time.Now().UnixNano()) // just started: it waits two heartbeats before it trusts its view
	n.peers.byName["silent"] = &peer{idx: 1, name: "silent", msgSubj: nodeSubject("silent", "m")}
	n.peers.publish()
	done := make(chan int, 1)
	if err := n.Gather([]byte("q"), func(a [][]byte) { done <- len(a) }); err != nil {
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
		if err := n.Gather([]byte("q"), func(a [][]byte) { done <- len(a) }); err != nil {
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
	n.startedAt.Store(time.Now().UnixNano())
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
	n.startedAt.Store(time.Now().UnixNano())
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
