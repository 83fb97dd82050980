package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// One peer's payload against JavaScript peers of other sessions
// (testdata/interop/victim_js.mjs: Autobahn|JS 22.11.1, wampy 8.0.2): a
// payload the router accepts and passes on must be one their decoders
// take. Autobahn|JS decodes in its WebSocket's message handler, so a
// decoder's exception there is uncaught and ends the peer's Node process
// (msgpack5, node-cbor); wampy closes its session (msgpackr, cbor-x). A
// hostile peer (RawSocket, hand-written bytes) sends the payload; each
// victim then has to get the next event of a well-behaved publisher. One
// router and one Node process per victim serve all of a test's cases.

// ---------------------------------------------------------------- raw peer

type hostile struct {
	t   *testing.T
	c   net.Conn
	ser proto.Serializer
	rd  *bufio.Reader
}

func dialHostile(t *testing.T, addr string, ser proto.Serializer) *hostile {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte{0x7f, 0xf0 | byte(ser), 0, 0}); err != nil {
		t.Fatal(err)
	}
	h := &hostile{t: t, c: c, ser: ser, rd: bufio.NewReader(c)}
	var hs [4]byte
	if _, err := io.ReadFull(h.rd, hs[:]); err != nil || hs[0] != 0x7f {
		t.Fatalf("rawsocket handshake: % x %v", hs, err)
	}
	feat := map[string]any{"features": map[string]any{"progressive_call_results": true}}
	h.send(h.msg(h.v(1), h.v("realm1"), h.v(map[string]any{"roles": map[string]any{
		"publisher": feat, "subscriber": feat, "caller": feat, "callee": feat}})))
	if m := h.recv(); code(m) != 2 {
		t.Fatalf("hostile peer: want WELCOME, got %v", m)
	}
	return h
}

// code is a WAMP message's type, or -1.
func code(m []any) int {
	if len(m) == 0 {
		return -1
	}
	switch c := m[0].(type) {
	case int64:
		return int(c)
	case uint64:
		return int(c)
	}
	return -1
}

// v encodes a Go value in the peer's serializer.
func (h *hostile) v(x any) []byte {
	h.t.Helper()
	r, err := proto.EncodeValue(h.ser, x)
	if err != nil {
		h.t.Fatal(err)
	}
	return r.B
}

// msg writes a WAMP message (a list of fewer than 16 elements) from
// encoded elements.
func (h *hostile) msg(parts ...[]byte) []byte {
	var b []byte
	switch h.ser {
	case proto.JSON:
		b = append(b, '[')
		b = append(b, bytes.Join(parts, []byte(","))...)
		return append(b, ']')
	case proto.MsgPack:
		b = append(b, 0x90|byte(len(parts)))
	case proto.CBOR:
		b = append(b, 0x80|byte(len(parts)))
	}
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func (h *hostile) send(b []byte) {
	h.t.Helper()
	hd := []byte{0, byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}
	if _, err := h.c.Write(append(hd, b...)); err != nil {
		h.t.Fatalf("hostile send: %v", err)
	}
}

// recv returns the next WAMP message, or fails the test.
func (h *hostile) recv() []any {
	h.t.Helper()
	m, ok := h.tryRecv(5 * time.Second)
	if !ok {
		h.t.Fatal("hostile recv: nothing within 5 s, or closed")
	}
	return m
}

// tryRecv returns the next WAMP message (decoded generically), answering
// pings; ok is false on timeout or close.
func (h *hostile) tryRecv(d time.Duration) (m []any, ok bool) {
	h.c.SetReadDeadline(time.Now().Add(d))
	defer h.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var hd [4]byte
	for {
		if _, err := io.ReadFull(h.rd, hd[:]); err != nil {
			return nil, false
		}
		n := int(hd[1])<<16 | int(hd[2])<<8 | int(hd[3])
		b := make([]byte, n)
		if _, err := io.ReadFull(h.rd, b); err != nil {
			return nil, false
		}
		if hd[0]&7 == 1 {
			h.c.Write(append([]byte{2, hd[1], hd[2], hd[3]}, b...))
			continue
		}
		if hd[0]&7 != 0 {
			continue
		}
		v, err := proto.DecodeValue(proto.Raw{Ser: h.ser, B: b})
		if err != nil {
			return []any{"undecodable", b}, true
		}
		l, _ := v.([]any)
		return l, true
	}
}

// publish sends PUBLISH {acknowledge: true} with the given encoded
// arguments list (and kwargs when not nil) and returns the router's answer.
func (h *hostile) publish(topic string, args, kwargs []byte) []any {
	h.t.Helper()
	parts := [][]byte{h.v(16), h.v(7), h.v(map[string]any{"acknowledge": true}), h.v(topic), args}
	if kwargs != nil {
		parts = append(parts, kwargs)
	}
	h.send(h.msg(parts...))
	m, ok := h.tryRecv(5 * time.Second)
	if !ok {
		return []any{"closed"}
	}
	return m
}

// refused checks that the router answered m, the hostile peer's message,
// with ABORT wamp.error.protocol_violation, as it answers a message it
// cannot take.
func refused(t *testing.T, ans []any, what string) {
	t.Helper()
	if code(ans) != 3 || len(ans) < 3 || ans[2] != "wamp.error.protocol_violation" {
		t.Errorf("%s: the router answered %v; want ABORT wamp.error.protocol_violation", what, ans)
	}
}

// ---------------------------------------------------------------- victim

type victim struct {
	name   string
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []map[string]any
	stderr bytes.Buffer
	ready  chan struct{}
	exited chan struct{}
	err    error
}

// startVictims starts victim_js.mjs once per spec ("lib/serializer/mode",
// mode as victim_js.mjs takes it, then extra arguments), all at once, and
// waits for each to be set up.
func startVictims(t *testing.T, addr string, specs ...string) []*victim {
	t.Helper()
	interopNeeds(t, "node")
	vs := make([]*victim, len(specs))
	for i, spec := range specs {
		f := strings.Fields(spec)
		p := strings.SplitN(f[0], "/", 3)
		argv := append([]string{"victim_js.mjs", "--lib", p[0], "--url", "ws://" + addr + "/ws", "--serializer", p[1], "--mode", p[2]}, f[1:]...)
		v := &victim{name: f[0], ready: make(chan struct{}), exited: make(chan struct{})}
		v.cmd = exec.Command("node", argv...)
		v.cmd.Dir = interopDir
		v.cmd.Stderr = &lockedWriter{mu: &v.mu, w: &v.stderr}
		stdout, err := v.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := v.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			v.cmd.Process.Kill()
			<-v.exited
		})
		go func() {
			var once sync.Once
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) != nil {
					continue
				}
				if m["ready"] != nil {
					once.Do(func() { close(v.ready) })
					continue
				}
				v.mu.Lock()
				v.lines = append(v.lines, m)
				v.mu.Unlock()
			}
			v.err = v.cmd.Wait()
			close(v.exited)
		}()
		vs[i] = v
	}
	for _, v := range vs {
		select {
		case <-v.ready:
		case <-v.exited:
			t.Fatalf("victim %s exited before it was set up: %v\n%s", v.name, v.err, v.stderrTail())
		case <-time.After(15 * time.Second):
			t.Fatalf("victim %s not set up within 15 s\n%s", v.name, v.stderrTail())
		}
	}
	return vs
}

func (v *victim) stderrTail() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return tail(v.stderr.String(), 15)
}

// waitFor waits up to d for a line matching pred.
func (v *victim) waitFor(d time.Duration, pred func(map[string]any) bool) (map[string]any, bool) {
	find := func() (map[string]any, bool) {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, l := range v.lines {
			if pred(l) {
				return l, true
			}
		}
		return nil, false
	}
	end := time.Now().Add(d)
	for {
		if l, ok := find(); ok {
			return l, true
		}
		select {
		case <-v.exited:
			return find()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(end) {
			return nil, false
		}
	}
}

// events returns the events of topic the victim printed so far.
func (v *victim) events(topic string) []map[string]any {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []map[string]any
	for _, l := range v.lines {
		if l["event"] == topic {
			out = append(out, l)
		}
	}
	return out
}

func (v *victim) dump() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var b strings.Builder
	for _, l := range v.lines {
		j, _ := json.Marshal(l)
		if len(j) > 300 {
			j = append(j[:300], "..."...)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	state := "running"
	select {
	case <-v.exited:
		state = fmt.Sprintf("exited: %v", v.err)
	default:
	}
	var errs []string
	for _, l := range strings.Split(v.stderr.String(), "\n") {
		if strings.Contains(l, "Error") && !strings.HasPrefix(strings.TrimSpace(l), "at ") {
			errs = append(errs, strings.TrimSpace(l))
		}
	}
	return b.String() + state + "\nstderr: " + strings.Join(errs, " | ")
}

// survive checks that every victim is still running and joined: each gets
// the event ["ok", n] of v.ok, published by a well-behaved Go session.
func survive(t *testing.T, rt *router, vs []*victim, n int, what string) {
	t.Helper()
	s := rt.dial("ws://"+rt.addr+"/ws", proto.JSON)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Publish(ctx, "v.ok", []any{"ok", n}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatalf("publish v.ok: %v", err)
	}
	for _, v := range vs {
		_, ok := v.waitFor(3*time.Second, func(m map[string]any) bool {
			a, _ := m["args"].([]any)
			return m["event"] == "v.ok" && len(a) == 2 && a[1] == float64(n)
		})
		if !ok {
			t.Errorf("%s: victim %s did not get the next event of another publisher; want it untouched by the other peer's message\nvictim:\n%s", what, v.name, v.dump())
		}
	}
}

// canon is x as the victims print values (JSON).
func canon(x any) any {
	b, _ := json.Marshal(x)
	var v any
	json.Unmarshal(b, &v)
	return v
}

// badPub is a hostile publication on v.bad.
type badPub struct {
	name         string
	ser          proto.Serializer
	args, kwargs []byte
	// refuse: the router refuses it (ABORT protocol_violation); else it
	// is delivered to every victim as args (and kwargs, when not nil).
	refuse        bool
	wantA, wantKw any
}

// runBadPubs publishes each case from a new hostile session and checks
// the router's answer, what each victim got and that it survived.
func runBadPubs(t *testing.T, rt *router, vs []*victim, cases []badPub) {
	delivered := 0
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := dialHostile(t, rt.addr, c.ser)
			ans := h.publish("v.bad", c.args, c.kwargs)
			if c.refuse {
				refused(t, ans, "publication")
			} else if code(ans) != 17 {
				t.Errorf("publication: the router answered %v; want PUBLISHED", ans)
			}
			survive(t, rt, vs, i, c.name+" published")
			if c.refuse {
				return
			}
			delivered++
			for _, v := range vs {
				evs := v.events("v.bad")
				if len(evs) != delivered {
					t.Errorf("victim %s got %d events of v.bad, want %d\n%s", v.name, len(evs), delivered, v.dump())
					continue
				}
				ev := evs[len(evs)-1]
				if !reflect.DeepEqual(ev["args"], canon(c.wantA)) || c.wantKw != nil && !reflect.DeepEqual(ev["kwargs"], canon(c.wantKw)) {
					t.Errorf("victim %s got args %v kwargs %v; want %v %v", v.name, ev["args"], ev["kwargs"], canon(c.wantA), canon(c.wantKw))
				}
			}
		})
	}
}

func hexb(s string) []byte {
	s = strings.ReplaceAll(s, " ", "")
	b := make([]byte, len(s)/2)
	for i := range b {
		fmt.Sscanf(s[2*i:2*i+2], "%02x", &b[i])
	}
	return b
}

// ---------------------------------------------------------------- tests

// TestJSVictimWampyUndefinedKillsAutobahnMsgPack: a wampy 8.0.2 MsgPack
// publisher (no hostile code: JavaScript's undefined, in a list and as a
// dictionary member) publishes on a topic an Autobahn|JS 22.11.1 MsgPack
// subscriber follows. The router passed the MsgPack payload through as it
// came, with msgpackr's undefined (fixext 1 of type 0, d4 00 00), which
// msgpack5 (Autobahn|JS's MsgPack) cannot decode: "unable to find ext type
// 0", thrown from the WebSocket's message handler, an uncaught exception
// that ended the subscriber's Node process. README promises undefined as
// null in a list and a dropped dictionary member, as JSON and CBOR
// subscribers got it.
func TestJSVictimWampyUndefinedKillsAutobahnMsgPack(t *testing.T) {
	t.Parallel()
	rt := startRouter(t)
	vs := startVictims(t, rt.addr, "autobahn/msgpack/sub", "autobahn/json/sub")
	p := startVictims(t, rt.addr, "wampy/msgpack/pub-undefined")[0]
	if l, ok := p.waitFor(5*time.Second, func(m map[string]any) bool { return m["published"] != nil || m["publishError"] != nil }); !ok || l["published"] == nil {
		t.Fatalf("wampy did not publish\n%s", p.dump())
	}
	survive(t, rt, vs, 0, "wampy MsgPack [1, undefined], {a: undefined, b: 2}")
	for _, v := range vs {
		ev, ok := v.waitFor(0, func(m map[string]any) bool { return m["event"] == "v.bad" })
		if !ok || !reflect.DeepEqual(ev["args"], canon([]any{1, nil})) || !reflect.DeepEqual(ev["kwargs"], canon(map[string]any{"b": 2})) {
			t.Errorf("victim %s got %v; want args [1, null], kwargs {b: 2}", v.name, ev)
		}
	}
}

// TestJSVictimAutobahnMsgPackDies: one peer's payload, valid WAMP that the
// router took and passed (or converted) to Autobahn|JS MsgPack sessions,
// that msgpack5 refused with an exception thrown from the WebSocket's
// message handler: the victim's Node process exited (a subscriber here;
// a caller or callee alike, TestJSVictimAutobahnMsgPackRPC).
//   - MsgPack ext type 0 (JavaScript undefined as msgpackr writes it), from
//     a MsgPack peer: now null (left out of a dictionary).
//   - a dictionary key "__proto__" (msgpack5's default protoAction 'error':
//     "Object contains forbidden prototype property"), from a JSON peer:
//     now refused.
//   - nesting at the router's old bound (100 levels in Arguments):
//     msgpack5 counts the message's own list and refuses depth 101
//     ("Maximum decode depth exceeded"), from a CBOR peer: now refused.
func TestJSVictimAutobahnMsgPackDies(t *testing.T) {
	t.Parallel()
	rt := startRouter(t)
	vs := startVictims(t, rt.addr, "autobahn/msgpack/sub")
	runBadPubs(t, rt, vs, []badPub{
		{name: "msgpack undefined", ser: proto.MsgPack, args: hexb("92 d4 00 00 01"), kwargs: hexb("82 a1 61 d4 00 00 a1 62 02"),
			wantA: []any{nil, 1}, wantKw: map[string]any{"b": 2}},
		{name: "json __proto__ key", ser: proto.JSON, args: []byte(`[]`), kwargs: []byte(`{"__proto__":{"admin":true}}`), refuse: true},
		{name: "msgpack __proto__ key in a list", ser: proto.MsgPack, args: hexb("91 81 a9" + fmt.Sprintf("%x", "__proto__") + "01"), refuse: true},
		{name: "cbor 100 levels", ser: proto.CBOR, args: hexb(strings.Repeat("81", 100) + "00"), refuse: true},
		{name: "cbor 99 levels", ser: proto.CBOR, args: hexb(strings.Repeat("81", 99) + "00"),
			wantA: nested(99)},
	})
}

// nested: 0 in n levels of lists.
func nested(n int) any {
	var v any = 0
	for i := 0; i < n; i++ {
		v = []any{v}
	}
	return v
}

// TestJSVictimAutobahnMsgPackRPC: the same through calls, against one
// Autobahn|JS MsgPack session that is caller and callee. A callee's YIELD
// whose ArgumentsKw held a "__proto__" key ended the Autobahn|JS MsgPack
// caller's process; a caller's CALL with it ended the Autobahn|JS MsgPack
// callee's. Both are refused now.
func TestJSVictimAutobahnMsgPackRPC(t *testing.T) {
	t.Parallel()
	rt := startRouter(t)
	callee := dialHostile(t, rt.addr, proto.JSON)
	callee.send(callee.msg(callee.v(64), callee.v(1), callee.v(map[string]any{}), callee.v("v.hostile")))
	if m := callee.recv(); code(m) != 65 {
		t.Fatalf("REGISTER: %v", m)
	}
	// The victim calls v.hostile 100 ms after it has joined.
	vs := startVictims(t, rt.addr, "autobahn/msgpack/callee,caller --delay 100 --proc v.hostile")
	t.Run("hostile callee", func(t *testing.T) {
		inv := callee.recv()
		if code(inv) != 68 {
			t.Fatalf("want INVOCATION, got %v", inv)
		}
		callee.send(callee.msg(callee.v(70), callee.v(inv[1]), callee.v(map[string]any{}), []byte(`[]`), []byte(`{"__proto__":1}`)))
		ans, _ := callee.tryRecv(3 * time.Second)
		refused(t, ans, "YIELD with a __proto__ key")
		if _, ok := vs[0].waitFor(3*time.Second, func(m map[string]any) bool { return m["result"] != nil || m["error"] != nil }); !ok {
			t.Errorf("the caller got no answer\n%s", vs[0].dump())
		}
		survive(t, rt, vs, 1, "callee's YIELD with a __proto__ key")
	})
	t.Run("hostile caller", func(t *testing.T) {
		h := dialHostile(t, rt.addr, proto.JSON)
		h.send(h.msg(h.v(48), h.v(1), h.v(map[string]any{}), h.v("v.echo"), []byte(`[]`), []byte(`{"__proto__":1}`)))
		ans, _ := h.tryRecv(3 * time.Second)
		refused(t, ans, "CALL with a __proto__ key")
		survive(t, rt, vs, 2, "caller's CALL with a __proto__ key")
		if _, ok := vs[0].waitFor(0, func(m map[string]any) bool { return m["invocation"] != nil }); ok {
			t.Errorf("the callee was invoked\n%s", vs[0].dump())
		}
	})
}

// TestJSVictimCBORTags: CBOR tags the router read through and passed, as
// they came, to CBOR peers, whose JavaScript decoders refuse them with an
// exception: wampy 8.0.2 (cbor-x) then drops its session (ABORT "Can not
// decode received message"), Autobahn|JS 22.11.1 (node-cbor) throws from
// the WebSocket's message handler and its process exits. These are tags
// Autobahn|Python's cbor2 takes as plain CBORTag values (no semantics).
// CBOR peers now get them stripped, as JSON and MsgPack peers did (and
// self-described CBOR, which node-cbor gave the application as a Tagged
// object); the dates the router understands still pass.
func TestJSVictimCBORTags(t *testing.T) {
	t.Parallel()
	rt := startRouter(t)
	vs := startVictims(t, rt.addr, "autobahn/cbor/sub", "wampy/cbor/sub")
	zero := []any{0}
	runBadPubs(t, rt, vs, []badPub{
		{name: "tag 2^31 (node-cbor: Tag must be a positive integer)", ser: proto.CBOR, args: hexb("81 da 80000000 00"), wantA: zero},
		{name: "tag 2^32 (cbor-x)", ser: proto.CBOR, args: hexb("81 db 0000000100000000 00"), wantA: zero},
		{name: "tag 225, a cbor-x packed-value prefix (No packed values available)", ser: proto.CBOR, args: hexb("81 d8 e1 00"), wantA: zero},
		{name: "tag 28704, a cbor-x packed-value prefix", ser: proto.CBOR, args: hexb("81 d9 7020 00"), wantA: zero},
		{name: "tag 51, a cbor-x packed table", ser: proto.CBOR, args: hexb("81 d8 33 00"), wantA: zero},
		{name: "tag 27 (generic object) on null", ser: proto.CBOR, args: hexb("81 d8 1b f6"), wantA: []any{nil}},
		{name: "tag 258 (set) on an integer", ser: proto.CBOR, args: hexb("81 d9 0102 00"), wantA: zero},
		{name: "tag 55799 (self-described CBOR; node-cbor: a Tagged object)", ser: proto.CBOR, args: hexb("81 d9 d9f7 01"), wantA: []any{1}},
		// Tag 29, and tag 1 beyond the years 1 to 9999, are refused (ABORT):
		// TestCBORTagOtherPeersCannotDecodeRefused, TestCBORTagContent.
		// Kept: the tags the router understands.
		{name: "tag 1 (epoch date) kept", ser: proto.CBOR, args: hexb("81 c1 1a 5f5e1000"), wantA: []any{map[string]any{"$date": "2020-09-13T12:26:40.000Z"}}},
		{name: "tag 0 (date text) kept", ser: proto.CBOR, args: hexb("81 c0 74" + fmt.Sprintf("%x", "2020-09-13T12:26:40Z")), wantA: []any{map[string]any{"$date": "2020-09-13T12:26:40.000Z"}}},
	})
}
