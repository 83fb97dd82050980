package route_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A wildcard pattern counts in its maker's quarter of the realm's
// patterns (realm_wildcard_subscriptions, _registrations) and, of 12
// components or more, in its maker's quarter of the walk. Both stayed
// the maker's after all its sessions left the pattern, for as long as
// any other client held it: one session of another address joining a
// victim address's 1,024 patterns kept that address refused "this
// client's" for any new pattern after it left them, and likewise its
// walk share. They now follow a holder whose quarters can take them, as
// the pattern's index bytes do; when none can, they stay the maker's (as
// the bytes do: moved whatever the holder held, two colluding owners
// would fill the realm that four are needed to fill).
func TestWildcardCountFollowsHolder(t *testing.T) {
	for _, kind := range []string{"subscribe", "register"} {
		t.Run(kind, func(t *testing.T) { wildcardCountFollowsHolder(t, kind) })
	}
}

func wildcardCountFollowsHolder(t *testing.T, kind string) {
	cl := startClockedLoops(t, 2, newStepClock(), func(c *route.Config) {
		c.Realms = []route.RealmConfig{{Name: "realm1", Anonymous: true}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const quarter = 1024
	from := map[string]string{}
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		from[ip] = relayFrom(t, ip, cl.addr)
	}
	opened := map[string][]*client.Session{} // by address
	dial := func(ip string) *client.Session {
		t.Helper()
		s, err := client.Dial(ctx, client.Config{URL: "rs://" + from[ip], Realm: "realm1", Serializer: proto.MsgPack})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		opened[ip] = append(opened[ip], s)
		return s
	}
	one := func(s *client.Session, u string) error {
		if kind == "subscribe" {
			_, err := s.Subscribe(ctx, u, func(*client.Event) {}, &client.SubscribeOptions{Match: "wildcard"})
			return err
		}
		_, err := s.Register(ctx, u, func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil },
			&client.RegisterOptions{Match: "wildcard", Invoke: "roundrobin"})
		return err
	}
	// take asks for each pattern from s (8 at a time) and returns how
	// many were taken and the refusals' texts by count.
	take := func(s *client.Session, uris []string) (int, map[string]int) {
		t.Helper()
		var mu sync.Mutex
		taken, refused := 0, map[string]int{}
		var wg sync.WaitGroup
		next := make(chan string)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for u := range next {
					err := one(s, u)
					mu.Lock()
					if err == nil {
						taken++
					} else {
						var we *client.Error
						if !errors.As(err, &we) || we.URI != "wamp.error.unavailable" {
							t.Errorf("%s %q: %v", kind, u, err)
						}
						refused[err.Error()]++
					}
					mu.Unlock()
				}
			}()
		}
		for _, u := range uris {
			next <- u
		}
		close(next)
		wg.Wait()
		return taken, refused
	}
	pats := func(prefix string, n int) []string {
		l := make([]string, n)
		for i := range l {
			l[i] = prefix + ".p" + strconv.Itoa(i) + "..z"
		}
		return l
	}
	// until retries take on fresh sessions of ip (a leave is run by its
	// loop after the client's Close returns) until it takes want.
	until := func(ip string, uris []string, want int) (int, map[string]int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			s := dial(ip)
			n, r := take(s, uris)
			if n >= want || time.Now().After(deadline) {
				return n, r
			}
			s.Close()
		}
	}

	// The walk: 127.0.0.4 makes patterns of 15 components until its
	// quarter of the walk refuses one, 127.0.0.5 joins them, 127.0.0.4
	// leaves and comes back for the one refused.
	parts := strings.Split("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o", ".")
	walkPat := func(i int) string {
		p := make([]string, len(parts))
		for j := range parts {
			if i&(1<<j) == 0 {
				p[j] = parts[j]
			}
		}
		p[len(p)-1] = "zz"
		return strings.Join(p, ".")
	}
	walker := dial("127.0.0.4")
	var made []string
	refused := ""
	for i := 1; refused == ""; i++ {
		if err := one(walker, walkPat(i)); err != nil {
			if !strings.Contains(err.Error(), "overlaps too many of this client's") {
				t.Fatalf("127.0.0.4's pattern %d refused %v, want its walk's quarter named", i, err)
			}
			refused = walkPat(i)
		} else {
			made = append(made, walkPat(i))
		}
	}
	if n, r := take(dial("127.0.0.5"), made); n != len(made) {
		t.Fatalf("127.0.0.5 joined %d of 127.0.0.4's %d patterns: %v", n, len(made), r)
	}
	walker.Close()
	n, r := until("127.0.0.4", []string{refused}, 1)
	t.Logf("127.0.0.4 made %d patterns of 15 components and was refused the next; left to 127.0.0.5's session, it took it again: %d (%v)", len(made), n, r)
	if n != 1 {
		t.Errorf("127.0.0.4 left its %d patterns of 15 components, held by 127.0.0.5 only, and was still refused its walk's quarter: %v", len(made), r)
	}

	// The count: 127.0.0.2 makes its quarter, 127.0.0.3 joins it all,
	// 127.0.0.2 leaves and comes back for a quarter of new patterns.
	victim := dial("127.0.0.2")
	if n, r := take(victim, pats("v", quarter)); n != quarter {
		t.Fatalf("127.0.0.2 took %d of %d new patterns: %v", n, quarter, r)
	}
	atk := dial("127.0.0.3")
	if n, r := take(atk, pats("v", quarter)); n != quarter {
		t.Fatalf("127.0.0.3 joined %d of 127.0.0.2's %d patterns: %v", n, quarter, r)
	}
	victim.Close()
	n, r = until("127.0.0.2", pats("w", quarter), quarter)
	t.Logf("127.0.0.2 left its %d patterns to 127.0.0.3's session, then took %d new ones; refusals: %v", quarter, n, r)
	if n != quarter {
		t.Fatalf("127.0.0.2 left its %d patterns, held by 127.0.0.3 only, then took %d of %d new patterns: %v", quarter, n, quarter, r)
	}
	// The holder counts them now: its own new pattern is past its quarter.
	n, r = take(dial("127.0.0.3"), []string{"a.x..z"})
	if n != 0 {
		t.Fatalf("127.0.0.3, holding %d patterns 127.0.0.2 made and left, made one more", quarter)
	}
	for msg := range r {
		if !strings.Contains(msg, "this client's (address or authid) wildcard") {
			t.Fatalf("127.0.0.3 refused %q, want its quarter named", msg)
		}
	}
	// None can take it: the holder is at its quarter, so the pattern
	// stays counted to its maker, which gets one pattern fewer.
	if n, r = take(dial("127.0.0.3"), []string{"w.p0..z"}); n != 1 {
		t.Fatalf("127.0.0.3 could not join 127.0.0.2's pattern: %v", r)
	}
	for _, s := range opened["127.0.0.2"] {
		s.Close()
	}
	n, r = until("127.0.0.2", pats("y", quarter), quarter-1)
	if n != quarter-1 {
		t.Fatalf("127.0.0.2 left a pattern to a holder at its quarter, then took %d of %d new patterns, want %d: %v", n, quarter, quarter-1, r)
	}
}
