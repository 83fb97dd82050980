package client

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A third-party router (Crossbar passes payloads through) may send, after
// the join, a message whose payload or nested Details hold a dictionary
// key "__proto__": proto's decoder refuses the key (JavaScript peers
// cannot take it), and the reader took any decode error for a protocol
// violation, so that one publisher's EVENT with ArgumentsKw
// {"__proto__": 1} ended every Go subscriber's session, with its
// subscriptions and registrations. Now the message alone pays: an EVENT
// is dropped (logged, rate-limited), a RESULT fails its call
// (ErrProtoKey), an ERROR fails its call without its payload, an
// INVOCATION is answered wamp.error.invalid_argument; Details are taken
// without the keys, at their top level as below it. The session goes on.
func TestProtoKeyCostsOnlyItsMessage(t *testing.T) {
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		t.Run(ser.String(), func(t *testing.T) {
			var logs lockedBuf
			s, c := setup(t, "rs", ser, func(cfg *Config) {
				cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			})
			events := make(chan *Event, 8)
			subscribe(t, s, c, "com.example.t", 9, func(ev *Event) { events <- ev }, nil)
			ran := make(chan *Invocation, 8)
			register(t, s, c, "com.example.p", 5, func(ctx context.Context, inv *Invocation) (*Result, error) {
				ran <- inv
				return &Result{Args: []any{"done"}}, nil
			}, nil)
			empty := c.raw(map[string]any{})

			// An EVENT whose ArgumentsKw hold the key: dropped.
			sendProtoKeyed(c, &proto.Message{Type: proto.CodeEvent, ID: 9, ID2: 1, Dict: empty,
				Args: c.raw([]any{}), Kwargs: c.raw(map[string]any{"__prot0__": 1, "a": 2})})
			// One whose Arguments hold it deep down: dropped.
			sendProtoKeyed(c, event(c, 9, 2, []any{map[string]any{"x": []any{map[string]any{"__prot0__": map[string]any{}}}}}, map[string]any{}))
			// One whose Details hold it, at their top level and below:
			// delivered without them.
			sendProtoKeyed(c, event(c, 9, 3, []any{"three"}, map[string]any{"__prot0__": 1, "x": map[string]any{"__prot0__": 2, "y": 3}}))
			select {
			case ev := <-events:
				eq(t, "event", ev.PublicationID, uint64(3))
				eq(t, "event args", ev.Args, []any{"three"})
				eq(t, "event details", ev.Details, map[string]any{"x": map[string]any{"y": int64(3)}})
			case <-s.Done():
				t.Fatalf("session ended: %v", s.Err())
			case <-time.After(wait):
				t.Fatal("the event with the key in its Details did not arrive")
			}

			// A RESULT whose Arguments hold it: its call fails.
			a := goDo(func() (*Result, error) { return s.Call(context.Background(), "com.example.q", nil, nil, nil) })
			m := c.expect(proto.CodeCall)
			sendProtoKeyed(c, &proto.Message{Type: proto.CodeResult, Request: m.Request, Dict: empty,
				Args: c.raw([]any{map[string]any{"__prot0__": 1}})})
			if _, err := a.wait(t); !errors.Is(err, ErrProtoKey) {
				t.Fatalf("Call answered by a RESULT holding the key: %v, want ErrProtoKey", err)
			}
			// An ERROR whose ArgumentsKw hold it: the call fails with the
			// error, its payload left out.
			a = goDo(func() (*Result, error) { return s.Call(context.Background(), "com.example.q", nil, nil, nil) })
			m = c.expect(proto.CodeCall)
			sendProtoKeyed(c, &proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: m.Request,
				Dict: c.raw(map[string]any{"__prot0__": 1}), URI: []byte("com.example.oops"),
				Args: c.raw([]any{}), Kwargs: c.raw(map[string]any{"__prot0__": 1})})
			_, err := a.wait(t)
			e := wampErr(t, err, "com.example.oops")
			if e.Kwargs != nil || len(e.Details) != 0 {
				t.Fatalf("error %+v: want no ArgumentsKw and no Details", e)
			}

			// An INVOCATION whose Arguments hold it: answered
			// invalid_argument; the handler does not run.
			sendProtoKeyed(c, &proto.Message{Type: proto.CodeInvocation, Request: 70, ID: 5, Dict: empty,
				Args: c.raw([]any{map[string]any{"__prot0__": 1}})})
			em := c.expect(proto.CodeError)
			eq(t, "ERROR request type", em.ReqType, proto.CodeInvocation)
			eq(t, "ERROR request", em.Request, uint64(70))
			eq(t, "ERROR uri", string(em.URI), proto.URIInvalidArgument)

			// The session goes on: an ordinary invocation and event.
			invoke(c, 71, 5, []any{1}, map[string]any{})
			y := c.expect(proto.CodeYield)
			eq(t, "YIELD request", y.Request, uint64(71))
			select {
			case inv := <-ran:
				eq(t, "invocation args", inv.Args, []any{int64(1)})
			default:
				t.Fatal("the handler did not run for the ordinary invocation")
			}
			c.send(event(c, 9, 4, []any{"four"}, map[string]any{}))
			select {
			case ev := <-events:
				eq(t, "event", ev.PublicationID, uint64(4))
			case <-time.After(wait):
				t.Fatalf("the ordinary event did not arrive (session: %v)", s.Err())
			}
			if n := strings.Count(logs.String(), "undecodable event"); n != 1 {
				t.Errorf("%d lines for the dropped events, want 1 (rate-limited): %s", n, logs.String())
			}
		})
	}
}

// A message holding the key whose structure is wrong as well still ends
// the session (ABORT wamp.error.protocol_violation), as does a key that
// is not a string: only the key is forgiven.
func TestProtoKeyWithBadMessageStillViolation(t *testing.T) {
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		t.Run(ser.String(), func(t *testing.T) {
			s, c := setup(t, "rs", ser)
			subscribe(t, s, c, "com.example.t", 9, func(ev *Event) {}, nil)
			// [EVENT, 9, 1, {}, [], {"__proto__": 1}, 7]: one element too many.
			b := c.encode(&proto.Message{Type: proto.CodeEvent, ID: 9, ID2: 1, Dict: c.raw(map[string]any{}),
				Args: c.raw([]any{}), Kwargs: c.raw(map[string]any{"__prot0__": 1})})
			b = bytes.ReplaceAll(b, []byte("__prot0__"), []byte("__proto__"))
			switch ser {
			case proto.JSON:
				b = append(b[:len(b)-1], []byte(",7]")...)
			case proto.MsgPack:
				b[0]++ // fixarray of 6 → 7
				b = append(b, 7)
			case proto.CBOR:
				b[0]++ // array(6) → array(7)
				b = append(b, 7)
			}
			noErr(t, "send", c.rawSend(b))
			ab := c.expect(proto.CodeAbort)
			eq(t, "ABORT reason", string(ab.URI), proto.URIProtocolViolation)
			select {
			case <-s.Done():
			case <-time.After(wait):
				t.Fatal("session still open")
			}
		})
	}
}

// sendProtoKeyed sends m with each dictionary key "__prot0__" made
// "__proto__" (which proto's encoder refuses).
func sendProtoKeyed(c *peerConn, m *proto.Message) {
	c.t.Helper()
	b := bytes.ReplaceAll(c.encode(m), []byte("__prot0__"), []byte("__proto__"))
	if err := c.rawSend(b); err != nil {
		c.t.Fatalf("peer: write: %v", err)
	}
}

// A WELCOME whose Details hold the key at their top level kept it in
// Session.Details(), where one below the top level is dropped (proto
// refuses the key there only): now both are dropped.
func TestWelcomeTopLevelProtoKeyDropped(t *testing.T) {
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		t.Run(ser.String(), func(t *testing.T) {
			p := newPeer(t)
			cfg := Config{URL: p.url("rs"), Realm: "realm1", Serializer: ser, DialTimeout: wait, ReplyTimeout: wait}
			a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
			c := p.accept()
			c.expect(proto.CodeHello)
			w := &proto.Message{Type: proto.CodeWelcome, ID: 5}
			w.Dict = protoKeyed(c, map[string]any{"authid": "joe", "authrole": "user", "__prot0__": map[string]any{"admin": true},
				"roles": map[string]any{"dealer": map[string]any{}, "broker": map[string]any{}}})
			c.send(w)
			s, err := a.wait(t)
			noErr(t, "Dial", err)
			t.Cleanup(func() { closeSession(t, s, c) })
			d := s.Details()
			if _, ok := d["__proto__"]; ok || d["authid"] != "joe" {
				t.Fatalf("Details %v: want authid joe and no \"__proto__\"", d)
			}
		})
	}
}
