package edge

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A progressive call invocation (CALL with progress: true) to a shared
// registration goes to a callee that announced
// progressive_call_invocations when one has, on whichever node, as on one
// node (pickCallee): the caller's node picks among the nodes with such a
// callee (the directory says how many each node has, and when its first
// and last registered), so first and last take the first (last) capable
// callee of the mesh. Before, the pick of a node knew nothing of its
// callees' features: a stream sent to a node whose callees cannot take
// it was refused there feature_not_supported, and rerouted only while its
// second chunk had not gone yet (a stream's chunks go back to back), so
// with a capable callee on B and a plain one on C about half of the
// roundrobin and random streams failed, and every first (last) one whose
// first (last) callee was C's; with capable callees on both, C's got the
// streams the first (last) capable callee, B's, should have had.
func TestMeshProgressiveInvocationsPickCapableCallee(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxT(t, 60*time.Second)
	caller := a.dial(a.ws(), proto.JSON)
	marks := map[*tnode]*client.Session{b: b.dial(b.rs(), proto.MsgPack), c: c.dial(c.rs(), proto.MsgPack)}
	nmark := 0
	// settled waits until a has every directory change on made so far: a
	// node's changes are applied in order, so once a sees a registration
	// made after them, it has them.
	settled := func(on *tnode) {
		t.Helper()
		nmark++
		proc := fmt.Sprintf("com.mark.%d", nmark)
		if _, err := marks[on].Register(ctx, proc, func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{}, nil
		}, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, func() error {
			if len(a.r.MeshCallees("realm1", proc)) == 0 {
				return fmt.Errorf("%s's registration %s not seen on a yet", on.name, proc)
			}
			return nil
		})
	}
	capable := func(on *tnode, proc, policy, name string) {
		t.Helper()
		s := on.dial(on.rs(), proto.MsgPack)
		if _, err := s.Register(ctx, proc, func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
			n := 1
			for cur := inv; cur.Progress; n++ {
				next, err := cur.Next(ctx)
				if err != nil {
					return nil, err
				}
				cur = next
			}
			return &client.Result{Args: []any{name, n}}, nil
		}, &client.RegisterOptions{Invoke: policy}); err != nil {
			t.Fatal(err)
		}
		settled(on)
	}
	plain := func(on *tnode, proc, policy string) *plainCallee {
		t.Helper()
		p := dialPlainCallee(t, on)
		p.register(t, proc, policy)
		settled(on)
		return p
	}
	// want: every stream is served by the callee named want.
	want := func(proc, want string, streams int) {
		t.Helper()
		failed := 0
		got := map[string]int{}
		for range streams {
			name, err := progressiveStream(ctx, caller, proc)
			if err != nil {
				failed++
				t.Logf("%s: %v", proc, err)
				continue
			}
			got[name]++
		}
		if failed > 0 || got[want] != streams {
			t.Errorf("%s: %d of %d progressive streams failed, the others served by %v: want all %d by %s", proc, failed, streams, got, streams, want)
		}
	}

	t.Run("roundrobin", func(t *testing.T) {
		capable(b, "com.prog.rr", "roundrobin", "b1")
		p := plain(c, "com.prog.rr", "roundrobin")
		want("com.prog.rr", "b1", 6)
		if n := p.invocations.Load(); n != 0 {
			t.Errorf("the callee without progressive_call_invocations got %d invocations", n)
		}
	})
	t.Run("random", func(t *testing.T) {
		capable(b, "com.prog.random", "random", "b1")
		plain(c, "com.prog.random", "random")
		want("com.prog.random", "b1", 8)
	})
	t.Run("first", func(t *testing.T) {
		// c's plain callee first: c's first callee is the mesh's first.
		plain(c, "com.prog.first", "first")
		capable(b, "com.prog.first", "first", "b1")
		want("com.prog.first", "b1", 6)
		// A capable callee on c registered after b's: b's is still the
		// first capable one.
		capable(c, "com.prog.first", "first", "c1")
		want("com.prog.first", "b1", 6)
	})
	t.Run("last", func(t *testing.T) {
		capable(b, "com.prog.last", "last", "b1")
		plain(c, "com.prog.last", "last")
		want("com.prog.last", "b1", 6)
		capable(c, "com.prog.last", "last", "c1")
		want("com.prog.last", "c1", 6)
		// b's second capable callee, then c's second plain one: c's last
		// callee is the mesh's last, b's the last capable one.
		capable(b, "com.prog.last", "last", "b2")
		plain(c, "com.prog.last", "last")
		want("com.prog.last", "b2", 6)
	})
	waitNothingPending(t, nodes...)
}

// progressiveStream sends a progressive call invocation of three chunks
// back to back, as a stream does, and returns the name of the callee that
// answered it (with every chunk).
func progressiveStream(ctx context.Context, caller *client.Session, proc string) (string, error) {
	return progressiveStreamWith(ctx, caller, proc, nil)
}

// progressiveStreamWith is progressiveStream with the call's options opts.
func progressiveStreamWith(ctx context.Context, caller *client.Session, proc string, opts *client.CallOptions) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pc, err := caller.CallProgressive(ctx, proc, opts)
	if err != nil {
		return "", err
	}
	for i := range 3 {
		if err := pc.Send([]any{i}, nil, i == 2); err != nil {
			if errors.Is(err, client.ErrCallDone) {
				break // the call ended: Result says how
			}
			return "", err
		}
	}
	res, err := pc.Result(ctx)
	if err != nil {
		return "", err
	}
	if len(res.Args) != 2 {
		return "", fmt.Errorf("result %v", res.Args)
	}
	name, _ := res.Args[0].(string)
	if n := fmt.Sprint(res.Args[1]); n != "3" {
		return "", fmt.Errorf("callee %s got %s chunks of 3", name, n)
	}
	return name, nil
}

// plainCallee is a callee over RawSocket and JSON that announces the
// callee role without progressive_call_invocations (the Go client
// announces every feature it has). It answers each INVOCATION with a
// YIELD and counts them.
type plainCallee struct {
	conn        net.Conn
	wmu         sync.Mutex
	req         atomic.Uint64
	registered  chan uint64 // the request ids REGISTERED answers
	invocations atomic.Int64
}

func dialPlainCallee(t *testing.T, on *tnode) *plainCallee {
	t.Helper()
	return dialPlainCalleeWith(t, on, map[string]any{"shared_registration": true})
}

// dialPlainCalleeWith is dialPlainCallee announcing the callee features
// features.
func dialPlainCalleeWith(t *testing.T, on *tnode, features map[string]any) *plainCallee {
	t.Helper()
	conn, err := net.DialTimeout("tcp", on.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// 0x7F, maximum length 2^24 (0xF), serializer JSON (1).
	if _, err := conn.Write([]byte{0x7F, 0xF1, 0, 0}); err != nil {
		t.Fatal(err)
	}
	var hs [4]byte
	if _, err := io.ReadFull(conn, hs[:]); err != nil || hs[0] != 0x7F || hs[1]&0x0F != 1 {
		t.Fatalf("RawSocket handshake: %x, %v", hs, err)
	}
	p := &plainCallee{conn: conn, registered: make(chan uint64, 8)}
	p.send(t, []any{proto.CodeHello, "realm1", map[string]any{"roles": map[string]any{
		"callee": map[string]any{"features": features}}}})
	if m := p.read(t); len(m) < 2 || fmt.Sprint(m[0]) != fmt.Sprint(int(proto.CodeWelcome)) {
		t.Fatalf("HELLO answered %v", m)
	}
	conn.SetDeadline(time.Time{})
	go p.serve()
	return p
}

func (p *plainCallee) send(t *testing.T, msg []any) {
	if err := p.write(0, msg); err != nil {
		t.Fatal(err)
	}
}

func (p *plainCallee) write(kind byte, msg any) error {
	var b []byte
	if kind == 0 {
		var err error
		if b, err = json.Marshal(msg); err != nil {
			return err
		}
	} else {
		b = msg.([]byte)
	}
	hdr := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	hdr[0] = kind
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, err := p.conn.Write(append(hdr, b...))
	return err
}

// frame reads one RawSocket frame: its type and payload.
func (p *plainCallee) frame() (byte, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(p.conn, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:]) & 0xFFFFFF
	b := make([]byte, n)
	if _, err := io.ReadFull(p.conn, b); err != nil {
		return 0, nil, err
	}
	return hdr[0] & 7, b, nil
}

func (p *plainCallee) read(t *testing.T) []any {
	for {
		kind, b, err := p.frame()
		if err != nil {
			t.Fatal(err)
		}
		if kind != 0 {
			continue
		}
		var m []any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
}

// serve answers pings and invocations, and passes REGISTERED on.
func (p *plainCallee) serve() {
	for {
		kind, b, err := p.frame()
		if err != nil {
			return
		}
		if kind == 1 { // PING
			p.write(2, b)
			continue
		}
		var m []any
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if kind != 0 || d.Decode(&m) != nil || len(m) < 2 {
			continue
		}
		id, _ := m[1].(json.Number).Int64()
		switch m[0].(json.Number).String() {
		case fmt.Sprint(int(proto.CodeRegistered)):
			p.registered <- uint64(id)
		case fmt.Sprint(int(proto.CodeInvocation)):
			p.invocations.Add(1)
			p.write(0, []any{proto.CodeYield, id, map[string]any{}, []any{"plain"}})
		}
	}
}

func (p *plainCallee) register(t *testing.T, proc, invoke string) {
	t.Helper()
	req := p.req.Add(1)
	p.send(t, []any{proto.CodeRegister, req, map[string]any{"invoke": invoke}, proc})
	select {
	case got := <-p.registered:
		if got != req {
			t.Fatalf("REGISTERED %d, want %d", got, req)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no REGISTERED for %s", proc)
	}
}

// A node of the previous release says nothing of its callees' features
// (no annex): its callees count as ones that may take a progressive call
// invocation, as every callee did before, not as ones that cannot. Here
// b is such a node with the one callee that can.
func TestMeshProgressiveInvocationsPreviousReleaseNode(t *testing.T) {
	t.Parallel()
	nodes := clusterWith(t, func(o *Options) { o.testNoAnnex = o.Name == "b" }, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxT(t, 30*time.Second)
	caller := a.dial(a.ws(), proto.JSON)
	s := b.dial(b.rs(), proto.MsgPack)
	if _, err := s.Register(ctx, "com.prog.old", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		n := 1
		for cur := inv; cur.Progress; n++ {
			next, err := cur.Next(ctx)
			if err != nil {
				return nil, err
			}
			cur = next
		}
		return &client.Result{Args: []any{"b1", n}}, nil
	}, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
		t.Fatal(err)
	}
	dialPlainCallee(t, c).register(t, "com.prog.old", "roundrobin")
	eventually(t, 10*time.Second, func() error {
		if n := len(a.r.MeshCallees("realm1", "com.prog.old")); n != 2 {
			return fmt.Errorf("a sees callees of com.prog.old on %d nodes", n)
		}
		return nil
	})
	for range 6 {
		if name, err := progressiveStream(ctx, caller, "com.prog.old"); err != nil || name != "b1" {
			t.Errorf("a progressive stream: served by %q, %v; want b's callee", name, err)
		}
	}
	waitNothingPending(t, nodes...)
}

// What a node of this release sends of its directory, a previous release
// reads as it did: a change is the entry and bytes it ignores, a sync
// answer's annexes are entries its route drops (a match byte that is not
// exact, prefix or wildcard, no realm, no URI), and nothing trails the
// mesh version. This release reads the annexes into their entries, and
// takes an entry without one (from the previous release) as saying
// nothing of its callees' features.
func TestDirectoryAnnexReadByPreviousRelease(t *testing.T) {
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := New(Options{Router: r, Name: "b", NatsURL: "nats://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	regs := []route.MeshRealmReg{
		{Realm: "realm1", MeshReg: route.MeshReg{Match: proto.MatchExact, URI: "com.a", Invoke: proto.InvokeFirst, Callees: 3, First: 10, Last: 30,
			Prog:    route.MeshCapable{Known: true, Callees: 2, First: 20, Last: 30},
			ProgPPT: route.MeshCapable{Known: true, Callees: 1, First: 30, Last: 30}}},
		{Realm: "realm1", MeshReg: route.MeshReg{Match: proto.MatchPrefix, URI: "com.b", Invoke: proto.InvokeRoundRobin, Callees: 1, First: -5, Last: -5,
			Prog: route.MeshCapable{Known: true}}},
		{Realm: "realm1", MeshReg: route.MeshReg{Match: proto.MatchWildcard, URI: "com..c", Invoke: proto.InvokeRandom, Callees: 2, First: 1, Last: 2}},
		// Every callee takes them, in payload passthru mode too: no
		// annex (route's pick takes the entry as one of a node that did
		// not say, which it ranks the same).
		{Realm: "realm1", MeshReg: route.MeshReg{Match: proto.MatchExact, URI: "com.d", Invoke: proto.InvokeLast, Callees: 2, First: 5, Last: 9,
			Prog:    route.MeshCapable{Known: true, Callees: 2, First: 5, Last: 9},
			ProgPPT: route.MeshCapable{Known: true, Callees: 2, First: 5, Last: 9}}},
		// Every callee takes them, none in payload passthru mode: only
		// the second annex.
		{Realm: "realm1", MeshReg: route.MeshReg{Match: proto.MatchExact, URI: "com.e", Invoke: proto.InvokeFirst, Callees: 1, First: 7, Last: 7,
			Prog:    route.MeshCapable{Known: true, Callees: 1, First: 7, Last: 7},
			ProgPPT: route.MeshCapable{Known: true}}},
	}
	// What this release reads back: an annex left out says nothing more
	// than the entry (all its callees), or than the first annex (the
	// same callees).
	want := func(e route.MeshRealmReg) route.MeshRealmReg {
		if e.ProgPPT.Callees == min(e.Prog.Callees, e.Callees) {
			e.ProgPPT = route.MeshCapable{}
		}
		if e.Prog.Callees == e.Callees {
			e.Prog = route.MeshCapable{}
		}
		return e
	}
	for _, e := range regs {
		b.Registered(e.Realm, e.MeshReg)
	}
	b.sendDirectory(&peer{name: "g"})
	batch := b.out.cur
	var deltas [][]byte
	var sync []byte
	for _, it := range batch.items {
		data := batch.arena[it.off : it.off+it.n]
		switch it.subj {
		case subjDelta:
			deltas = append(deltas, data)
		case nodeSubject("g", "S"):
			sync = data
		}
	}
	if len(deltas) != len(regs) || sync == nil {
		t.Fatalf("%d changes and sync answer %v queued", len(deltas), sync != nil)
	}
	plain := func(e route.MeshRealmReg) route.MeshRealmReg {
		e.Prog, e.ProgPPT = route.MeshCapable{}, route.MeshCapable{}
		return e
	}
	for i, d := range deltas {
		// The previous release: boot, version, the entry; the rest unread.
		old := rd{b: d}
		old.fixed64()
		old.uv()
		if e := old.entry(); old.err != nil || e != plain(regs[i]) {
			t.Errorf("change %d read by the previous release: %+v, %v; want %+v", i, e, old.err, plain(regs[i]))
		}
		if _, _, e, err := readDelta(d); err != nil || e != want(regs[i]) {
			t.Errorf("change %d read: %+v, %v; want %+v", i, e, err, want(regs[i]))
		}
	}
	// The previous release's applySync: count, entries, part, more, mesh
	// version, and nothing after it.
	old := rd{b: sync}
	old.fixed64()
	old.uv()
	cnt := old.uv()
	if old.err != nil || cnt > uint64(len(old.b)/minEntry) {
		t.Fatalf("sync answer: count %d of %d bytes, %v", cnt, len(old.b), old.err)
	}
	var got []route.MeshRealmReg
	for range cnt {
		got = append(got, old.entry())
	}
	part := old.uv()
	if old.err != nil || len(old.b) < 1 || part != 0 || old.b[0] != 0 {
		t.Fatalf("sync answer: part %d, rest %x, %v", part, old.b, old.err)
	}
	old.b = old.b[1:]
	if mv := old.uv(); old.err != nil || mv != meshVersion || len(old.b) != 0 {
		t.Fatalf("sync answer: mesh version %d, %d bytes after it, %v", mv, len(old.b), old.err)
	}
	byURI := map[string]route.MeshRealmReg{}
	annexes := 0
	for _, e := range got {
		if e.Match <= proto.MatchWildcard && e.URI != "" {
			byURI[e.URI] = e
			continue
		}
		if e.Realm != "" || e.URI != "" {
			t.Errorf("an annex with realm %q and URI %q: the previous release's route may take it for a registration", e.Realm, e.URI)
		}
		annexes++
	}
	if annexes != 3 || len(byURI) != len(regs) {
		t.Errorf("sync answer: %d entries and %d annexes, want %d and 3", len(byURI), annexes, len(regs))
	}
	for _, e := range regs {
		if byURI[e.URI] != plain(e) {
			t.Errorf("sync answer read by the previous release: %+v, want %+v", byURI[e.URI], plain(e))
		}
	}
	// This release folds each annex into its entry.
	folded := map[string]route.MeshRealmReg{}
	for _, e := range foldAnnexes(got) {
		folded[e.URI] = e
	}
	for _, e := range regs {
		if folded[e.URI] != want(e) {
			t.Errorf("sync answer read: %+v, want %+v", folded[e.URI], want(e))
		}
	}
	// An annex of a kind this release does not know, or with no entry
	// before it, is dropped.
	odd := []route.MeshRealmReg{
		{MeshReg: route.MeshReg{Match: matchAnnex, Invoke: annexProg, Callees: 1}},
		regs[2],
		{MeshReg: route.MeshReg{Match: matchAnnex, Invoke: 9, Callees: 1}},
	}
	if f := foldAnnexes(odd); len(f) != 1 || f[0] != regs[2] {
		t.Errorf("odd annexes folded into %+v", f)
	}
}
