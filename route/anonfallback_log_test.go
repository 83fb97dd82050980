package route_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A HELLO [ticket, anonymous] naming an authid locked out at its address
// is welcomed anonymously (5111c66): the device that was alice now runs as
// a guest, and the operator is told so, with the address, realm and
// authid, at WARN. Before, the fallback wrote no line at all (the lockout's
// own WARN, at the third failure, is rate-limited router-wide and said
// nothing of the device still connecting), and nothing counted it: the
// device's calls failing not_authorized as a guest were the only sign.
func TestAnonymousFallbackOfLockedOutAuthIDIsLogged(t *testing.T) {
	users := ticketUsers(t)
	buf := &syncBuf{}
	dial := loginRouter(t, route.Config{
		Realms: []route.RealmConfig{
			{Name: "a", Users: users, Anonymous: true, AnonymousRole: "guest",
				Authenticators: []route.Authenticator{&route.TicketAuth{Users: users}}},
		},
		Logger:     slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelWarn})),
		AuthLimits: route.AuthLimits{DelayAfter: 100, BlockAfter: 3},
	})
	alice := func(methods ...string) client.Config {
		return client.Config{Realm: "a", AuthID: "alice", AuthMethods: methods}
	}
	for i := range 3 {
		if got, _ := dial(alice("ticket"), "old"); got != proto.URIAuthenticationFailed {
			t.Fatalf("alice's wrong password %d: %q, want %s", i+1, got, proto.URIAuthenticationFailed)
		}
	}
	before := buf.String()
	got, d := dial(alice("ticket", "anonymous"), "pw-alice")
	if got != "" || d["authmethod"] != "anonymous" {
		t.Fatalf("HELLO [ticket, anonymous] as alice, locked out: ABORT %q, %v; want an anonymous WELCOME", got, d["authmethod"])
	}
	var line string
	for _, l := range strings.Split(strings.TrimPrefix(buf.String(), before), "\n") {
		if strings.Contains(l, "anonymous") && strings.Contains(l, "authid=alice") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no WARN line of alice's fallback to anonymous; log since the lockout:\n%s", strings.TrimPrefix(buf.String(), before))
	}
	for _, want := range []string{"level=WARN", "realm=a", "address=127.0.0.1", "authid=alice"} {
		if !strings.Contains(line, want) {
			t.Errorf("fallback line %q lacks %q", line, want)
		}
	}
}
