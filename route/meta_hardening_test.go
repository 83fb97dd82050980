package route

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Testament publish_options that PUBLISH would refuse (a black/white list
// or flag of the wrong type) are refused with invalid_argument: they used
// to be dropped silently together with the lists, so a testament meant for
// one eligible session reached every subscriber.
func TestMetaTestamentBadPublishOptions(t *testing.T) {
	for i, po := range []any{
		map[string]any{"eligible": []any{"placeholder"}, "exclude_me": "no"}, // exclude_me must be a bool
		map[string]any{"eligible": []any{"placeholder", "x"}},                // an id list with a string
		"eligible", // not a dictionary
	} {
		t.Run(string(rune('a'+i)), func(t *testing.T) {
			e := newEnv(t, 1, nil)
			a, b := e.join(proto.JSON), e.join(proto.JSON)
			a.subscribe("com.dead", nil)
			b.subscribe("com.dead", nil)
			c := e.join(proto.JSON)
			if m, ok := po.(map[string]any); ok {
				l := m["eligible"].([]any)
				l[0] = a.id // only a may receive it
			}
			req := c.call("wamp.session.add_testament", nil, []any{"com.dead", []any{"bye"}}, map[string]any{"publish_options": po})
			m := c.recv()
			if m.Type == proto.CodeError && m.Request == req && string(m.URI) == proto.URIInvalidArgument {
				return
			}
			c.drop()
			e.sync()
			leaked := ""
			select {
			case ev := <-b.peer.in:
				leaked = "; b, not eligible, received it: " + describe(ev)
			case <-time.After(20 * time.Millisecond):
			}
			t.Fatalf("publish_options %v: got %v %s, want ERROR %s%s", po, m.Type, m.URI, proto.URIInvalidArgument, leaked)
		})
	}
}

// msgpackCall sends a msgpack CALL whose Arguments and ArgumentsKw are the
// given raw bytes (nil: absent).
func (c *tc) msgpackCall(proc string, args, kwargs []byte) uint64 {
	req := c.nextReq()
	m := &proto.Message{Type: proto.CodeCall, Request: req, Dict: c.opts(nil), URI: []byte(proc)}
	if args != nil {
		m.Args = proto.Raw{Ser: proto.MsgPack, B: args}
	}
	if kwargs != nil {
		m.Kwargs = proto.Raw{Ser: proto.MsgPack, B: kwargs}
	}
	c.send(m)
	return req
}

// A meta call whose arguments the router cannot decode (a msgpack string
// that is not UTF-8) is refused: it used to run as if it had no arguments,
// so count ignored its filter and kill ignored its invalid reason and
// killed with wamp.close.normal.
func TestMetaUndecodableArguments(t *testing.T) {
	e := newEnv(t, 1, nil)
	c := e.join(proto.MsgPack)
	victim := e.join(proto.JSON)

	// [["admin"], "\xff"]: count the sessions of role admin (there are
	// none). A MsgPack string that is not UTF-8 is a malformed message
	// now, refused before anything runs.
	bad := e.join(proto.MsgPack)
	bad.msgpackCall("wamp.session.count", []byte{0x92, 0x91, 0xa5, 'a', 'd', 'm', 'i', 'n', 0xa1, 0xff}, nil)
	if m := bad.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
		t.Errorf("count with a non-UTF-8 argument: got %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
	}

	// A transparent (binary) payload the router cannot read.
	req := c.msgpackCall("wamp.session.count", []byte{0xc4, 0x01, 0x00}, nil)
	if m := c.recv(); m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIInvalidArgument {
		t.Errorf("count with a transparent payload: got %v %s, want ERROR %s", m.Type, describe(m), proto.URIInvalidArgument)
	}

	// wamp.session.kill [victim] {"reason": "not a uri", "message": "\xff"}:
	// an invalid reason, so nobody may be killed.
	args := append([]byte{0x91, 0xcf}, be64(victim.id)...)
	kw := []byte{0x82, 0xa6, 'r', 'e', 'a', 's', 'o', 'n', 0xa9, 'n', 'o', 't', ' ', 'a', ' ', 'u', 'r', 'i', 0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e', 0xa1, 0xff}
	bad = e.join(proto.MsgPack)
	bad.msgpackCall("wamp.session.kill", args, kw)
	if m := bad.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
		t.Errorf("kill with a non-UTF-8 keyword argument: got %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
	}
	e.sync()
	select {
	case m := <-victim.peer.in:
		t.Fatalf("victim killed by a call with an invalid reason: %v %s", m.Type, m.URI)
	case <-time.After(20 * time.Millisecond):
	}
}

func be64(v uint64) []byte {
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

// The kill procedures' message keyword argument must be a string (WAMP
// §Session Meta API: message|string); another type used to be dropped
// silently and the session killed without it.
func TestMetaKillMessageType(t *testing.T) {
	e := newEnv(t, 1, nil)
	admin, victim := e.join(proto.JSON), e.join(proto.JSON)
	req := admin.call("wamp.session.kill", nil, []any{victim.id}, map[string]any{"message": 42})
	if m := admin.recv(); m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIInvalidArgument {
		t.Fatalf("kill with message 42: got %v %s, want ERROR %s", m.Type, describe(m), proto.URIInvalidArgument)
	}
	victim.quiet()
}

// A session whose WELCOME does not fit in its transport never joined: no
// on_join was announced for it, so no on_leave may be either.
func TestMetaNoOnLeaveWithoutOnJoin(t *testing.T) {
	e := newEnv(t, 1, nil)
	mon := e.join(proto.JSON)
	mon.subscribe("wamp.session.on_join", nil)
	mon.subscribe("wamp.session.on_leave", nil)
	c := e.connect(proto.JSON)
	c.peer.maxLen.Store(40) // not even the compact WELCOME fits
	c.hello("realm1", allFeatures, nil)
	e.sync()
	if !c.peer.closed.Load() {
		t.Fatal("the session with a 40-byte limit is still open")
	}
	mon.quiet()
	if n := mon.callMeta("wamp.session.count", nil, nil); n != int64(1) {
		t.Fatalf("count %v, want 1", n)
	}
}

// Meta procedures take ids, URIs, role lists and small testament payloads:
// their arguments are refused past a bound before they are decoded. They
// used to be decoded whole into Go values on the event loop, where they
// grow 20 to 50 times: a 16 MiB CALL to wamp.session.count allocated 760
// MiB (357 MiB live at once), and 128 testaments of 16 MiB each could be
// held per session.
func TestMetaHugeArguments(t *testing.T) {
	e := newEnv(t, 1, nil)
	c := e.join(proto.JSON)
	var b []byte
	b = append(b, "[null,["...)
	for len(b) < 4<<20 {
		b = append(b, "{},"...)
	}
	b = append(b, "{}]]"...)
	req := c.nextReq()
	c.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: c.opts(nil), URI: []byte("wamp.session.count"), Args: proto.Raw{Ser: proto.JSON, B: b}})
	m := c.recv()
	if m.Type != proto.CodeError || m.Request != req || (string(m.URI) != proto.URIPayloadSizeExceeded && string(m.URI) != proto.URIInvalidArgument) {
		t.Fatalf("wamp.session.count with 4 MiB of arguments: got %v %s, want ERROR", m.Type, describe(m))
	}
	// A testament of a few KiB is still taken.
	c.callMeta("wamp.session.add_testament", []any{"com.dead", []any{strings.Repeat("x", 8192)}}, nil)
}

// filter_authroles is a set: a session is checked against it once, not
// against every one of the thousands of roles 64 KiB of arguments list
// (16k roles x 5000 sessions: 78 ms of the shard per call, then 5 ms).
func TestMetaRoleFilterIsASet(t *testing.T) {
	roles := make([]any, 0, 8<<10)
	for i := 0; len(roles) < cap(roles); i++ {
		roles = append(roles, "anonymous", "r"+strconv.Itoa(i%100))
	}
	filter, err := roleFilter([]any{roles}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(filter) != 101 {
		t.Fatalf("a filter of %d roles, 101 of them distinct, holds %d", len(roles), len(filter))
	}
	e := newEnv(t, 1, nil)
	a := e.join(proto.MsgPack)
	e.join(proto.MsgPack)
	if n := a.callMeta("wamp.session.count", []any{roles}, nil); n != int64(2) {
		t.Fatalf("count = %v, want 2", n)
	}
	e.advance(time.Second) // the filter's 8,192 roles cost the burst (TestRoleFilterCharged)
	if l := ids(a.callMeta("wamp.session.list", []any{[]any{"r1", "r2"}}, nil)); len(l) != 0 {
		t.Fatalf("list = %v, want none", l)
	}
	if n := a.callMeta("wamp.session.count", []any{[]any{}}, nil); n != int64(0) {
		t.Fatalf("count with no roles = %v, want 0", n)
	}
}
