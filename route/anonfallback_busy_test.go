package route_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A login refused for a passing condition of the router (the logins in
// progress holding Config.MaxLoginBytes, which any two addresses can
// fill; too many challenges open at the address) gets the "try again
// later" ABORT even when it offered anonymous after its method: the
// client retries and logs in with its credentials once the condition
// ends. Before (5111c66, 2eb8aa5), it was welcomed anonymously: a device
// configured with [ticket, anonymous] joined as a guest while others'
// logins filled the bound, and, welcomed, did not retry, staying a guest
// after they ended. Only the authid's own lockout passes to anonymous.
func TestBusyLoginDoesNotFallBackToAnonymous(t *testing.T) {
	users := ticketUsers(t)
	url := serveLoginRouter(t, route.Config{
		Realms: []route.RealmConfig{{Name: "a", Users: users, Anonymous: true, AnonymousRole: "guest",
			Authenticators: []route.Authenticator{&route.TicketAuth{Users: users}}}},
		MaxLoginBytes: 64 << 10,
	})
	pad := map[string]any{"pad": strings.Repeat("x", 7<<10)}
	release := make(chan struct{})
	var challenged, refused atomic.Int32
	var wg sync.WaitGroup
	const holders = 12
	for range holders {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := client.Dial(ctx, client.Config{URL: url, Serializer: proto.JSON, Realm: "a", AuthID: "alice",
				AuthMethods: []string{"ticket"}, AuthExtra: pad,
				OnChallenge: func(string, map[string]any) (string, map[string]any, error) {
					challenged.Add(1)
					<-release
					return "pw-alice", nil, nil
				}})
			if err == nil {
				s.Close()
				return
			}
			refused.Add(1)
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for challenged.Load()+refused.Load() < holders && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c := challenged.Load(); c == 0 || c == holders {
		close(release)
		t.Fatalf("%d of %d logins challenged under a 64 KiB bound, want the bound full with some refused", c, holders)
	}
	// Bob, configured with [ticket, anonymous], logs in while the bound
	// is full.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: url, Serializer: proto.JSON, Realm: "a", AuthID: "bob",
		AuthMethods: []string{"ticket", "anonymous"}, AuthExtra: pad,
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return "pw-bob", nil, nil }})
	close(release)
	wg.Wait()
	if err == nil {
		d := s.Details()
		s.Close()
		t.Fatalf("bob [ticket, anonymous] while the logins hold the bound: WELCOME as %v role %v by %v, want ABORT %s (router busy) to retry",
			d["authid"], d["authrole"], d["authmethod"], proto.URIAuthenticationFailed)
	}
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URIAuthenticationFailed {
		t.Fatalf("bob while the bound is full: %v, want ABORT %s", err, proto.URIAuthenticationFailed)
	}
	// Once they end, bob retries and logs in as himself.
	s, err = client.Dial(ctx, client.Config{URL: url, Serializer: proto.JSON, Realm: "a", AuthID: "bob",
		AuthMethods: []string{"ticket", "anonymous"}, AuthExtra: pad,
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return "pw-bob", nil, nil }})
	if err != nil {
		t.Fatalf("bob's retry after the logins ended: %v, want WELCOME", err)
	}
	d := s.Details()
	s.Close()
	if d["authid"] != "bob" || d["authmethod"] != "ticket" {
		t.Fatalf("bob's retry welcomed as %v by %v, want bob by ticket", d["authid"], d["authmethod"])
	}
}
