package route

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Parallel guessing: many connections from one address first get their
// CHALLENGE, then send their AUTHENTICATEs at once. Only BlockAfter of them
// may be checked; the rest are refused unchecked once the address is locked
// out, the right password included. (The limiter used to count a failure
// only after its check, so all of them were checked and the right one got
// WELCOME, although the address was locked out after the tenth failure.)
func TestParallelGuessesAreNotAllChecked(t *testing.T) {
	const n = 60
	e, _ := secureEnv(t, nil)
	var cs []*tc
	for i := range n {
		c := e.connectFrom(i%2, proto.JSON, "192.0.2.7:1")
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
		c.expect(proto.CodeChallenge)
		cs = append(cs, c)
	}
	for i, c := range cs {
		pw := "wrong"
		if i == n-1 {
			pw = "pw-alice"
		}
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte(pw), Dict: c.opts(nil)})
	}
	failed, denied, welcomed := outcomes(t, e, cs)
	t.Logf("%d checked and failed, %d refused unchecked, %d welcomed", failed, denied, welcomed)
	if failed != DefaultAuthBlockAfter || welcomed != 0 || denied != n-DefaultAuthBlockAfter {
		t.Fatalf("%d failed, %d denied, %d welcomed; want %d, %d, 0", failed, denied, welcomed, DefaultAuthBlockAfter, n-DefaultAuthBlockAfter)
	}
	st := e.r.Stats()
	if st.AuthFailures[authMethodIndex("ticket")] != DefaultAuthBlockAfter || st.AuthDenied != n-DefaultAuthBlockAfter {
		t.Fatalf("Stats: %d ticket failures, %d denied", st.AuthFailures[authMethodIndex("ticket")], st.AuthDenied)
	}
	// Locked out: alice's HELLO is refused from that address.
	c := e.connectFrom(0, proto.JSON, "192.0.2.7:2")
	c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
	if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URIAuthenticationDenied {
		t.Fatalf("alice's HELLO while locked out: %s", m.URI)
	}
}

// One device behind a NAT with a wrong password locks out its authid at
// the address, not the other devices behind it: they go on logging in,
// and their failures are checked, not refused. (The lockout was the
// address's: one device with a stale secret kept a whole site's fleet
// from logging in.) The same authid from another address is not locked
// out either.
func TestOneAuthIDLockedOutNotItsAddress(t *testing.T) {
	e, _ := secureEnv(t, func(c *Config) { c.AuthLimits.DelayAfter = 100 }) // failures answered at once (the test's clock is manual)
	const nat = "192.0.2.20:1"
	for i := range DefaultAuthBlockAfter {
		c := e.connectFrom(i%2, proto.JSON, nat)
		if m := c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "stale" }); string(m.URI) != proto.URIAuthenticationFailed {
			t.Fatalf("failure %d: %v %s", i, m.Type, m.URI)
		}
	}
	e.sync()
	c := e.connectFrom(0, proto.JSON, nat)
	c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
	if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URIAuthenticationDenied || m.Opt.String(proto.KeyMessage) != errIDLockedOut.Message {
		t.Fatalf("alice's HELLO after %d failures: %s %q, want %s %q", DefaultAuthBlockAfter, m.URI, m.Opt.String(proto.KeyMessage), proto.URIAuthenticationDenied, errIDLockedOut.Message)
	}
	// Another authid behind the same address is checked: its wrong
	// secret fails (not denied), and a right one is welcomed.
	c = e.connectFrom(1, proto.JSON, nat)
	if m := c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "carol"}, func(map[string]any) string { return "nope" }); string(m.URI) != proto.URIAuthenticationFailed {
		t.Fatalf("carol behind the same address: %v %s, want %s", m.Type, m.URI, proto.URIAuthenticationFailed)
	}
	// An anonymous HELLO is judged by the realm (which has no anonymous
	// access), not refused by the limiter.
	c = e.connectFrom(0, proto.JSON, nat)
	c.hello("secure", allFeatures, nil)
	if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URINoMatchingAuthMethod {
		t.Fatalf("anonymous HELLO behind the address: %s, want %s", m.URI, proto.URINoMatchingAuthMethod)
	}
	// alice from elsewhere logs in.
	c = e.connectFrom(1, proto.JSON, "198.51.100.20:1")
	welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "pw-alice" }))
}

// Password spraying, one guess for each of many authids from one address,
// locks the whole address out once its failures reach
// AddressBlockAfter: a fresh authid and an anonymous HELLO are refused.
// Parallel attempts of many authids get no more checks than that.
func TestAddressLockedOutBySpraying(t *testing.T) {
	const addrBlock = 8
	e, _ := secureEnv(t, func(c *Config) { c.AuthLimits.BlockAfter = 3; c.AuthLimits.AddressBlockAfter = addrBlock })
	const n = 20
	var cs []*tc
	for i := range n {
		c := e.connectFrom(i%2, proto.JSON, "192.0.2.30:1")
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "user" + strconv.Itoa(i)})
		c.expect(proto.CodeChallenge)
		cs = append(cs, c)
	}
	for _, c := range cs {
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("password1"), Dict: c.opts(nil)})
	}
	failed, denied, welcomed := outcomes(t, e, cs)
	if failed != addrBlock || denied != n-addrBlock || welcomed != 0 {
		t.Fatalf("%d checked and failed, %d refused unchecked; want %d, %d", failed, denied, addrBlock, n-addrBlock)
	}
	for _, hello := range []map[string]any{{"authmethods": []any{"ticket"}, "authid": "fresh"}, nil} {
		c := e.connectFrom(0, proto.JSON, "192.0.2.30:2")
		c.hello("secure", allFeatures, hello)
		if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URIAuthenticationDenied || m.Opt.String(proto.KeyMessage) != errLockedOut.Message {
			t.Fatalf("HELLO %v from a sprayed address: %s %q, want %s %q", hello, m.URI, m.Opt.String(proto.KeyMessage), proto.URIAuthenticationDenied, errLockedOut.Message)
		}
	}
}

// outcomes reads each session's answer to its AUTHENTICATE (the clock
// advanced past the limiter's delays): checked and failed, refused
// unchecked, welcomed.
func outcomes(t *testing.T, e *env, cs []*tc) (failed, denied, welcomed int) {
	t.Helper()
	for _, c := range cs {
		m := e.advanceUntil(c, 250*time.Millisecond)
		switch {
		case m.Type == proto.CodeAbort && string(m.URI) == proto.URIAuthenticationFailed:
			failed++
		case m.Type == proto.CodeAbort && string(m.URI) == proto.URIAuthenticationDenied:
			denied++
		case m.Type == proto.CodeWelcome:
			welcomed++
		default:
			t.Fatalf("got %v %s", m.Type, m.URI)
		}
	}
	return failed, denied, welcomed
}

// Clients behind one NAT logging in at once with the right passwords wait
// for their turn rather than being refused: no failure, no lockout.
func TestParallelRightPasswordsAllWelcomed(t *testing.T) {
	const n = 3 * DefaultAuthBlockAfter
	e, _ := secureEnv(t, nil)
	var cs []*tc
	for i := range n {
		c := e.connectFrom(i%2, proto.JSON, "192.0.2.8:1")
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
		c.expect(proto.CodeChallenge)
		cs = append(cs, c)
	}
	for _, c := range cs {
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("pw-alice"), Dict: c.opts(nil)})
	}
	for i, c := range cs {
		if m := c.recv(); m.Type != proto.CodeWelcome {
			t.Fatalf("login %d: %v %s", i, m.Type, m.URI)
		}
	}
	if st := e.r.Stats(); st.AuthSuccesses[authMethodIndex("ticket")] != n || st.AuthDenied != 0 {
		t.Fatalf("Stats: %d ticket successes, %d denied", st.AuthSuccesses[authMethodIndex("ticket")], st.AuthDenied)
	}
}

// Sessions that leave while their AUTHENTICATE waits or is being checked
// give their place back: the address is not starved afterwards.
func TestAuthPlacesReturnedWhenSessionsLeave(t *testing.T) {
	e, _ := secureEnv(t, func(c *Config) { c.AuthLimits.BlockAfter = 2; c.AuthLimits.MaxOpenChallenges = 4 })
	var cs []*tc
	for range 4 {
		c := e.connectFrom(0, proto.JSON, "192.0.2.9:1")
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
		c.expect(proto.CodeChallenge)
		cs = append(cs, c)
	}
	// A fifth open challenge is refused.
	c := e.connectFrom(0, proto.JSON, "192.0.2.9:1")
	c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
	if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URIAuthenticationDenied {
		t.Fatalf("fifth challenge: %s", m.URI)
	}
	// All four send the right password and go at once: two are checked,
	// two wait; all leave before their answer.
	for _, c := range cs {
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("pw-alice"), Dict: c.opts(nil)})
		c.drop()
	}
	e.sync()
	// Their open challenges and places are back (the two checks in flight
	// give theirs back when they end): two fresh logins go through.
	for i := range 2 {
		c := e.connectFrom(i, proto.JSON, "192.0.2.9:1")
		welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "pw-alice" }))
	}
	// A check of a session that left may end only now, on a worker: it
	// grants a queued (also departed) AUTHENTICATE its place, whose shard
	// gives it back. So the record empties soon, not at once.
	var checking, open, waiting int
	for deadline := time.Now().Add(5 * time.Second); ; {
		e.sync()
		e.r.limiter.mu.Lock()
		r := e.r.limiter.addrs[e.r.limiter.keys("192.0.2.9", "", "").ak]
		checking, open, waiting = int(r.checking), int(r.open), len(r.waiting())
		if p := e.r.limiter.ids[e.r.limiter.keys("192.0.2.9", "", "alice").id]; p != nil {
			checking += int(p.checking)
		}
		e.r.limiter.mu.Unlock()
		if checking == 0 && open == 0 && waiting == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("limiter record 5 s after everyone left: checking %d, open %d, waiting %d", checking, open, waiting)
		}
		time.Sleep(time.Millisecond)
	}
}

// Exempt networks are never locked out.
func TestAuthLimitsExempt(t *testing.T) {
	e, _ := secureEnv(t, func(c *Config) {
		c.AuthLimits.BlockAfter = 2
		c.AuthLimits.DelayAfter = 100
		c.AuthLimits.Exempt = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	})
	for range 5 {
		c := e.connectFrom(0, proto.JSON, "198.51.100.4:1")
		if m := c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "nope" }); string(m.URI) != proto.URIAuthenticationFailed {
			t.Fatalf("exempt address: %v %s", m.Type, m.URI)
		}
	}
	c := e.connectFrom(0, proto.JSON, "198.51.100.4:1")
	welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "pw-alice" }))
}
