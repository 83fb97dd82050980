package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// inProcPeer is a benchPeer inside the process (as the HTTP gateway's
// sessions are).
type inProcPeer struct{ *benchPeer }

func (inProcPeer) InProcess() {}

// Under Config.InProcessURIs only an InProcessPeer's session may register
// (the gateway's webhook locks): a client gets not_authorized, for any
// match policy, and keeps the rest of the namespace.
func TestInProcessURIsReserved(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.InProcessURIs = []string{"edgewamp.gateway."} })
	c := e.join(proto.JSON)
	for _, r := range []struct {
		uri   string
		match string
	}{{"edgewamp.gateway.webhook.0123456789abcdef", ""}, {"edgewamp.gateway.", "prefix"}, {"edgewamp.gateway..x", "wildcard"}} {
		req := c.nextReq()
		o := map[string]any{}
		if r.match != "" {
			o["match"] = r.match
		}
		c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(o), URI: []byte(r.uri)})
		m := c.expectError(proto.CodeRegister, req, proto.URINotAuthorized)
		if args := argsOf(m); len(args) == 0 {
			t.Fatalf("%s: the refusal says nothing", r.uri)
		}
	}
	c.register("edgewamp.gatewayx.ok", nil) // only the prefix is reserved

	sh := e.r.Shard(0)
	p := inProcPeer{&benchPeer{ser: proto.JSON}}
	done := make(chan struct{})
	if err := sh.Do(func() {
		defer close(done)
		ss := sh.Open(p)
		hello, _ := proto.EncodeValue(proto.JSON, map[string]any{"roles": allFeatures})
		sh.Receive(ss, encodeMsg(t, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: hello}))
		empty, _ := proto.EncodeValue(proto.JSON, map[string]any{})
		sh.Receive(ss, encodeMsg(t, &proto.Message{Type: proto.CodeRegister, Request: 1, Dict: empty, URI: []byte("edgewamp.gateway.webhook.0123456789abcdef")}))
	}); err != nil {
		t.Fatal(err)
	}
	<-done
	var m proto.Message
	var dec proto.Decoder
	if err := dec.Decode(proto.JSON, p.last, &m); err != nil || m.Type != proto.CodeRegistered {
		t.Fatalf("the in-process session's REGISTER: %v %v", m.Type, err)
	}
}

func encodeMsg(t *testing.T, m *proto.Message) []byte {
	t.Helper()
	b, err := proto.Append(nil, proto.JSON, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
