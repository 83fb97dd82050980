package client

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A router may answer every AUTHENTICATE with another CHALLENGE: the join
// took any number of rounds within DialTimeout, each a call of
// Config.OnChallenge (a token fetched from an identity provider, a key's
// signature over whatever the router chose). A hostile or broken router
// had the client run it without bound: 500 times in one join here, and
// thousands a second at loopback speed. WAMP's methods (ticket, wampcra,
// scram, cryptosign) take one round; past maxChallengeRounds the join is
// aborted (ABORT wamp.error.protocol_violation).
func TestJoinChallengeRoundsBounded(t *testing.T) {
	const rounds = 500
	p := newPeer(t)
	var calls atomic.Int32
	cfg := Config{URL: p.url("rs"), Realm: "realm1", DialTimeout: wait, AuthMethods: []string{"ticket"},
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) {
			calls.Add(1)
			return "ticket", nil, nil
		}}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	c.expect(proto.CodeHello)
	answered := 0
	for answered < rounds {
		c.send(&proto.Message{Type: proto.CodeChallenge, URI: []byte("ticket"), Dict: c.raw(map[string]any{})})
		m := c.recv()
		if m.Type == proto.CodeAbort {
			eq(t, "abort reason", string(m.URI), proto.URIProtocolViolation)
			break
		}
		eq(t, "answer", m.Type, proto.CodeAuthenticate)
		answered++
	}
	if answered >= rounds {
		c.send(&proto.Message{Type: proto.CodeAbort, URI: []byte(proto.URIAuthenticationFailed)})
	}
	s, err := a.wait(t)
	if err == nil {
		s.Close()
		t.Fatal("Dial succeeded")
	}
	if answered > maxChallengeRounds || int(calls.Load()) > maxChallengeRounds {
		t.Fatalf("the client answered %d CHALLENGEs in one join (OnChallenge called %d times), want at most %d", answered, calls.Load(), maxChallengeRounds)
	}
}
