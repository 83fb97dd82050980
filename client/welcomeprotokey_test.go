package client

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A third-party router's WELCOME (or join ABORT) whose Details hold a
// dictionary key "__proto__" below their top level (an authenticator's
// authextra) was refused by the client's decoder as a whole, as proto
// refuses that key in anything a JavaScript peer may get: the join failed
// ("proto: dictionary key must be a string, and not \"__proto__\""), and
// an ABORT's reason was lost behind the decode error. Now the join's
// message is taken without those keys, keeping the rest of its Details
// (authid, authrole, the rest of authextra), with one WARN line.
func TestWelcomeNestedProtoKeyDropped(t *testing.T) {
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		t.Run(ser.String(), func(t *testing.T) {
			var logs bytes.Buffer
			p := newPeer(t)
			cfg := Config{URL: p.url("rs"), Realm: "realm1", Serializer: ser, DialTimeout: wait, ReplyTimeout: wait,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
			c := p.accept()
			c.expect(proto.CodeHello)
			w := &proto.Message{Type: proto.CodeWelcome, ID: 5}
			w.Dict = protoKeyed(c, map[string]any{"authid": "joe", "authrole": "user", "authmethod": "ticket",
				"authextra": map[string]any{"profile": map[string]any{"__prot0__": map[string]any{"admin": true}, "name": "j"}},
				"roles":     map[string]any{"dealer": map[string]any{}, "broker": map[string]any{}}})
			c.send(w)
			s, err := a.wait(t)
			noErr(t, "Dial", err)
			t.Cleanup(func() { closeSession(t, s, c) })
			d := s.Details()
			if d["authid"] != "joe" || d["authrole"] != "user" {
				t.Fatalf("Details %v: authid and authrole lost", d)
			}
			ae, _ := d["authextra"].(map[string]any)
			prof, _ := ae["profile"].(map[string]any)
			if _, ok := prof["__proto__"]; ok || prof["name"] != "j" {
				t.Errorf("authextra %v: want profile {name: j} without \"__proto__\"", ae)
			}
			if n := strings.Count(logs.String(), "__proto__"); n != 1 {
				t.Errorf("%d log lines naming \"__proto__\", want 1: %s", n, logs.String())
			}
		})
	}
	t.Run("abort", func(t *testing.T) {
		p := newPeer(t)
		cfg := Config{URL: p.url("rs"), Realm: "realm1", Serializer: proto.MsgPack, DialTimeout: wait, ReplyTimeout: wait}
		a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
		c := p.accept()
		c.expect(proto.CodeHello)
		m := &proto.Message{Type: proto.CodeAbort, URI: []byte(proto.URINoSuchRealm)}
		m.Dict = protoKeyed(c, map[string]any{"message": "no realm", "x": map[string]any{"__prot0__": 1}})
		c.send(m)
		_, err := a.wait(t)
		var we *Error
		if !errors.As(err, &we) || we.URI != proto.URINoSuchRealm || we.Details["message"] != "no realm" {
			t.Errorf("Dial: %v, want the ABORT's %s with its message", err, proto.URINoSuchRealm)
		}
	})
}

// protoKeyed encodes d in c's serializer with each key "__prot0__" made
// "__proto__" (which proto's encoder refuses).
func protoKeyed(c *peerConn, d map[string]any) proto.Raw {
	r := c.raw(d)
	r.B = bytes.ReplaceAll(r.B, []byte("__prot0__"), []byte("__proto__"))
	return r
}
