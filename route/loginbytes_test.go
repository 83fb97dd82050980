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

// The logins in progress hold copies of what their clients sent (HELLO's
// authextra up to 8 KiB, AUTHENTICATE's signature up to 16 KiB) until
// they end, and the router bounds their total (Config.MaxLoginBytes):
// past it a login that would hold more is refused "router busy"
// (authentication_failed, not counted as a failure), and what the logins
// held is given back when they end. Before, only the per-address bound of
// open challenges (1,024) held them: ~10 KiB each, ~200 MB over the
// connections of a default node. Here 20 clients from one address each
// HELLO with 7 KiB of authextra and sit on their CHALLENGE under a bound
// of 64 KiB: before, all 20 were challenged.
func TestLoginBytesBounded(t *testing.T) {
	users := ticketUsers(t)
	url := serveLoginRouter(t, route.Config{
		Realms:        []route.RealmConfig{{Name: "a", Users: users, Authenticators: []route.Authenticator{&route.TicketAuth{Users: users}}}},
		MaxLoginBytes: 64 << 10,
	})
	release := make(chan struct{})
	var challenged, busy, other atomic.Int32
	dial := func(wait bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := client.Dial(ctx, client.Config{URL: url, Serializer: proto.JSON, Realm: "a", AuthID: "alice", AuthMethods: []string{"ticket"},
			AuthExtra: map[string]any{"pad": strings.Repeat("x", 7<<10)},
			OnChallenge: func(string, map[string]any) (string, map[string]any, error) {
				if wait {
					challenged.Add(1)
					<-release
				}
				return "pw-alice", nil, nil
			}})
		if err == nil {
			s.Close()
		}
		return err
	}
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			err := dial(true)
			var we *client.Error
			switch {
			case err == nil:
			case errors.As(err, &we) && we.URI == proto.URIAuthenticationFailed && strings.Contains(we.Error(), "router busy"):
				busy.Add(1)
			default:
				other.Add(1)
				t.Errorf("a login: %v", err)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for challenged.Load()+busy.Load()+other.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c, b := challenged.Load(), busy.Load()
	close(release)
	wg.Wait()
	t.Logf("%d logins challenged and held, %d refused router busy", c, b)
	if c > 8 || c < 1 || c+b != n {
		t.Fatalf("%d logins of ~7.5 KiB challenged and held at once under a bound of 64 KiB, %d refused: want 1 to 8 held and the rest refused", c, b)
	}
	// What they held was given back: a login goes through.
	if err := dial(false); err != nil {
		t.Fatalf("a login once the others ended: %v", err)
	}
}
