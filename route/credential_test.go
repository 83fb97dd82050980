package route

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// credVerifier stands for the OAuth2 server's verifier: a ticket
// "eyJhbGciOiJFZERTQSJ9.<jti>.<gid>" logs in as alice with a credential named by jti and
// gid; revoked ids fail its Check; "eyJhbGciOiJFZERTQSJ9.temp.x" is a refusal that says
// nothing about the token (the issuer is not ready).
type credVerifier struct {
	mu      sync.Mutex
	revoked map[string]bool
	gone    atomic.Bool // the principal left the configuration
}

func (v *credVerifier) isRevoked(ids ...string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, id := range ids {
		if v.revoked[id] {
			return true
		}
	}
	return false
}

func (v *credVerifier) revoke(ids ...string) {
	v.mu.Lock()
	for _, id := range ids {
		v.revoked[id] = true
	}
	v.mu.Unlock()
}

func (v *credVerifier) VerifyTicket(req *AuthRequest, ticket string) (*Identity, error) {
	parts := strings.Split(ticket, ".")
	if parts[1] == "temp" {
		return nil, &AuthError{URI: proto.URIAuthenticationFailed, Message: "the issuer is not ready", Temporary: true}
	}
	jti, gid := parts[1], parts[2]
	return &Identity{AuthID: "alice", AuthRole: "user", AuthProvider: "jwt", Credential: &Credential{
		IDs: []string{jti, gid},
		Check: func() string {
			switch {
			case v.isRevoked(jti, gid):
				return "the access token was revoked"
			case v.gone.Load():
				return "principal alice was removed"
			}
			return ""
		},
	}}, nil
}

func credEnv(t *testing.T, mutate ...func(*Config)) (*env, *credVerifier) {
	v := &credVerifier{revoked: map[string]bool{}}
	e, _ := secureEnv(t, func(c *Config) {
		rc := &c.Realms[0]
		rc.Authenticators = []Authenticator{&TicketAuth{Users: rc.Users, Tokens: v}}
		for _, f := range mutate {
			f(c)
		}
	})
	return e, v
}

func (e *env) tokenLogin(ticket string) *tc {
	c := e.connect(proto.JSON)
	welcomeDetails(e.t, c.login(map[string]any{"authmethods": []any{"ticket"}}, func(map[string]any) string { return ticket }))
	return c
}

func expectKilled(t *testing.T, c *tc, msg string) {
	t.Helper()
	m := c.expect(proto.CodeGoodbye)
	if string(m.URI) != proto.CloseKilled || !strings.Contains(m.Opt.String(proto.KeyMessage), msg) {
		t.Fatalf("GOODBYE %s %q, want %s %q", m.URI, m.Opt.String(proto.KeyMessage), proto.CloseKilled, msg)
	}
}

// credSessions counts the sessions indexed by credential id on every shard.
func (e *env) credSessions() int {
	n := 0
	for i, x := range e.execs {
		sh := e.r.Shard(i)
		x.do(func() {
			for _, l := range sh.creds {
				n += len(l)
			}
		})
	}
	return n
}

// RevokeCredentials ends exactly the sessions holding a revoked id (a
// token's jti, or the login (gid) several tokens came from), on whichever
// shard they are, and the index forgets sessions that leave.
func TestRevokeCredentialsKillsSessions(t *testing.T) {
	e, _ := credEnv(t)
	a1 := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiA1.loginA") // two tokens of one login,
	a2 := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiA2.loginA") // on the two shards
	b := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiB.loginB")
	pw := e.connect(proto.JSON) // a password session holds no credential
	welcomeDetails(t, pw.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice", "authrole": "ops"}, func(map[string]any) string { return "pw-alice" }))
	if n := e.credSessions(); n != 6 {
		t.Fatalf("%d index entries, want 6 (two ids for each of three sessions)", n)
	}

	e.r.RevokeCredentials([]string{"nobody", "jtiB"}, "the access token was revoked")
	expectKilled(t, b, "revoked")
	e.r.RevokeCredentials([]string{"loginA"}, "the login was revoked")
	expectKilled(t, a1, "login was revoked")
	expectKilled(t, a2, "login was revoked")
	e.sync()
	for _, c := range []*tc{a1, a2, b} {
		c.send(&proto.Message{Type: proto.CodeGoodbye, URI: []byte(proto.CloseGoodbyeAndOut), Dict: c.opts(nil)})
	}
	pw.quiet()
	e.sync()
	if n := e.credSessions(); n != 0 {
		t.Fatalf("%d index entries left after every credential session ended", n)
	}
	// The password session is untouched and still works.
	pw.call("wamp.session.count", nil, nil, nil)
	if m := pw.expect(proto.CodeResult); argsOf(m)[0] != uint64(1) && argsOf(m)[0] != int64(1) {
		t.Fatalf("session count %v", argsOf(m))
	}
}

// A revocation that reaches the router while the login is being checked
// (after the verifier said yes, before the session is established) still
// ends the session: the credential is checked again when it is indexed.
func TestCredentialCheckedAtWelcome(t *testing.T) {
	e, v := credEnv(t)
	v.revoke("loginR") // revoked, but the verifier does not look (a race)
	c := e.connect(proto.JSON)
	m := c.login(map[string]any{"authmethods": []any{"ticket"}}, func(map[string]any) string { return "eyJhbGciOiJFZERTQSJ9.jtiR.loginR" })
	welcomeDetails(t, m)
	expectKilled(t, c, "revoked")
}

// After a configuration reload each credential session is checked again.
func TestCredentialCheckedOnReload(t *testing.T) {
	e, v := credEnv(t)
	c := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jti1.login1")
	e.r.Reload(e.r.cfg.Realms)
	e.sync()
	c.quiet()
	v.gone.Store(true)
	e.r.Reload(e.r.cfg.Realms)
	expectKilled(t, c, "alice was removed")
}

// A temporary refusal (the verifier could not check) is not a guess: any
// number of them leaves the address's failure count alone, so that a fleet
// reconnecting while its token issuer is unreachable is not locked out.
func TestTemporaryAuthErrorNotCounted(t *testing.T) {
	e, _ := credEnv(t)
	for i := 0; i < 3*DefaultAuthBlockAfter; i++ {
		c := e.connectFrom(i%2, proto.JSON, "10.0.0.1:1")
		m := c.login(map[string]any{"authmethods": []any{"ticket"}}, func(map[string]any) string { return "eyJhbGciOiJFZERTQSJ9.temp.x" })
		if m.Type != proto.CodeAbort || string(m.URI) != proto.URIAuthenticationFailed || !strings.Contains(m.Opt.String(proto.KeyMessage), "not ready") {
			t.Fatalf("attempt %d: %v %s", i, m.Type, m.URI)
		}
	}
	if st := e.r.Stats(); st.AuthFailures[authMethodIndex("ticket")] != 0 {
		t.Fatalf("%d failures counted for temporary refusals", st.AuthFailures[authMethodIndex("ticket")])
	}
	c := e.connectFrom(0, proto.JSON, "10.0.0.1:1")
	welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}}, func(map[string]any) string { return "eyJhbGciOiJFZERTQSJ9.j.g" }))
}

// RecheckCredentials ends, of the sessions holding a group id (an OAuth2
// client's cut-off), only those whose credential's Check fails, with its
// reason; the others stay.
func TestRecheckCredentialsEndsOnlyWithdrawn(t *testing.T) {
	e, v := credEnv(t)
	old := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiC1.client:x") // covered by the cut-off
	later := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiC2.client:x")
	v.revoke("jtiC1")
	e.r.RecheckCredentials([]string{"client:x"})
	expectKilled(t, old, "the access token was revoked")
	e.sync()
	later.call("wamp.session.count", nil, nil, nil) // role user may not: an ERROR, not a GOODBYE
	later.expect(proto.CodeError)
}
