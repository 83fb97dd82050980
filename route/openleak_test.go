package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A login the router ends with ABORT (a wrong password, a message other
// than AUTHENTICATE after CHALLENGE, a second AUTHENTICATE, the HELLO
// timeout) gives back its place among the address's challenge-response
// authentications in progress (limits.auth_failures.max_open_challenges),
// as one whose client closes the connection does: abort's leave dropped
// the login without endJoin, so each such ABORT kept its place for good,
// and after max_open_challenges of them (1,024 by default: a NAT's
// devices with a typo now and then over the router's lifetime, or one
// client that sends CALL instead of AUTHENTICATE 1,024 times in a second)
// every challenge-response login from the address was refused
// authentication_denied until a restart, its record never swept.
func TestAbortedLoginsGiveBackTheirOpenChallenge(t *testing.T) {
	const addr = "198.51.100.7:1"
	e, _ := secureEnv(t, func(c *Config) {
		c.AuthLimits.MaxOpenChallenges = 4
		c.AuthLimits.BlockAfter = 1000
		c.AuthLimits.DelayAfter = 1000
	})
	logins := 0
	hello := func() *tc {
		t.Helper()
		logins++
		c := e.connectFrom(0, proto.JSON, addr)
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
		if m := c.recv(); m.Type != proto.CodeChallenge {
			t.Fatalf("login %d from the address, after %d ended with ABORT: %v %s %q, want CHALLENGE", logins, logins-1, m.Type, m.URI, m.Opt.String(proto.KeyMessage))
		}
		return c
	}
	authenticate := func(c *tc, pw string) {
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte(pw), Dict: c.opts(nil)})
	}
	aborted := func(c *tc, uri string) {
		t.Helper()
		if m := c.expect(proto.CodeAbort); string(m.URI) != uri {
			t.Fatalf("ABORT %s %q, want %s", m.URI, m.Opt.String(proto.KeyMessage), uri)
		}
	}
	for round := range 2 { // twice max_open_challenges
		// A wrong password.
		c := hello()
		authenticate(c, "wrong")
		aborted(c, proto.URIAuthenticationFailed)
		// A CALL where AUTHENTICATE is due.
		c = hello()
		c.call("com.app.x", nil, nil, nil)
		aborted(c, proto.URIProtocolViolation)
		// AUTHENTICATE twice (in one turn of the shard: the first's
		// check must not end in between).
		c = hello()
		b, err := c.enc.Append(nil, c.peer.ser, &proto.Message{Type: proto.CodeAuthenticate, URI: []byte("wrong"), Dict: c.opts(nil)})
		if err != nil {
			t.Fatal(err)
		}
		c.exec.do(func() { c.sh.Receive(c.sess, b); c.sh.Receive(c.sess, b) })
		aborted(c, proto.URIProtocolViolation)
		// No AUTHENTICATE within the HELLO timeout.
		c = hello()
		if m := e.advanceUntil(c, time.Second); m.Type != proto.CodeAbort || string(m.URI) != proto.URIAuthenticationFailed {
			t.Fatalf("round %d: after the HELLO timeout: %v %s", round, m.Type, m.URI)
		}
	}
	// Every check has ended once its failure is counted (on the worker).
	var open, checking int
	for deadline := time.Now().Add(5 * time.Second); ; {
		e.sync()
		l := e.r.limiter
		l.mu.Lock()
		r := l.addrs[l.keys("198.51.100.7", "", "").ak]
		open, checking = int(r.open), int(r.checking)
		l.mu.Unlock()
		if open == 0 && checking == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if open != 0 || checking != 0 {
		t.Errorf("after 8 logins ended with ABORT the address has %d authentications open and %d checks in flight, want 0", open, checking)
	}
	// The right password still gets in from that address.
	c := e.connectFrom(0, proto.JSON, addr)
	welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "pw-alice" }))
}
