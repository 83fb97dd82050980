package route_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// relayFrom listens on a loopback port and relays each connection to
// target from the local address src, so that a client dialing the
// returned address reaches target as a client of src.
func relayFrom(t *testing.T, src, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
			u, err := d.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// A realm's wildcard patterns (limits.realm_wildcard_subscriptions and
// _registrations, 4,096 each) were counted realm-wide only: four
// sessions of one address, each at its own bound (1,024), took all of
// them, and every other client of the realm was then refused any new
// wildcard pattern, of any length ("too many wildcard subscriptions in
// realm"), for as long as they stayed. One owner (the client address of
// an anonymous session, the authid of an authenticated one:
// Session.walkOwner) now makes at most a quarter of them, so that four
// owners are needed to fill the realm; joining a pattern that exists
// makes none and counts nothing.
func TestWildcardRealmCountOwnerQuarter(t *testing.T) {
	for _, kind := range []string{"subscribe", "register"} {
		t.Run(kind, func(t *testing.T) { wildcardRealmCountOwnerQuarter(t, kind) })
	}
}

func wildcardRealmCountOwnerQuarter(t *testing.T, kind string) {
	pw, err := route.HashPassword("alice-secret", 1000)
	if err != nil {
		t.Fatal(err)
	}
	users, err := route.NewUsers([]*route.User{{AuthID: "alice", Roles: []string{"user"}, Password: pw}})
	if err != nil {
		t.Fatal(err)
	}
	cl := startClockedLoops(t, 2, newStepClock(), func(c *route.Config) {
		c.Realms = []route.RealmConfig{{Name: "realm1", Anonymous: true, Users: users,
			Authenticators: []route.Authenticator{&route.TicketAuth{Users: users}}}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const realmMax, quarter = 4096, 1024
	dial := func(addr string, cfg client.Config) *client.Session {
		t.Helper()
		cfg.URL, cfg.Realm, cfg.Serializer = "rs://"+addr, "realm1", proto.MsgPack
		s, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	from := map[string]string{"127.0.0.1": cl.addr}
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		from[ip] = relayFrom(t, ip, cl.addr)
	}
	// take asks for each pattern from s (8 at a time), a shared
	// registration's callee for "register", and returns how many were
	// taken and the refusals' texts by count.
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
					var err error
					if kind == "subscribe" {
						_, err = s.Subscribe(ctx, u, func(*client.Event) {}, &client.SubscribeOptions{Match: "wildcard"})
					} else {
						_, err = s.Register(ctx, u, func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil },
							&client.RegisterOptions{Match: "wildcard", Invoke: "roundrobin"})
					}
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
	onlyRefusal := func(who string, refused map[string]int, want string) {
		t.Helper()
		for msg, n := range refused {
			if !strings.Contains(msg, want) {
				t.Fatalf("%s refused %d times %q, want refusals naming %q", who, n, msg, want)
			}
		}
	}

	// Four sessions of 127.0.0.2, each asking for its own bound of new
	// patterns.
	var atk [4]*client.Session
	atkTaken, atkRefused := 0, map[string]int{}
	for i := range atk {
		atk[i] = dial(from["127.0.0.2"], client.Config{})
		n, r := take(atk[i], pats("a"+strconv.Itoa(i), quarter))
		atkTaken += n
		for msg, k := range r {
			atkRefused[msg] += k
		}
	}
	t.Logf("four sessions of 127.0.0.2 took %d new wildcard patterns; refusals: %v", atkTaken, atkRefused)
	if atkTaken != quarter {
		t.Errorf("127.0.0.2's four sessions took %d of the realm's %d wildcard patterns, want its quarter (%d)", atkTaken, realmMax, quarter)
	}

	// Another address (127.0.0.1, anonymous) makes its own quarter.
	b := dial(from["127.0.0.1"], client.Config{})
	n, r := take(b, pats("b", quarter))
	if n != quarter {
		t.Fatalf("127.0.0.1 took %d of %d new wildcard patterns while 127.0.0.2 held %d: %v", n, quarter, atkTaken, r)
	}
	// Past its quarter its next session is refused a new pattern, but
	// joins an existing one (no new pattern: nothing counted).
	b2 := dial(from["127.0.0.1"], client.Config{})
	n, r = take(b2, []string{"b2.x..z"})
	if n != 0 {
		t.Fatalf("127.0.0.1's second session took a new pattern past the address's quarter")
	}
	onlyRefusal("127.0.0.1 past its quarter", r, "this client's (address or authid)")
	t.Logf("past its quarter: %v", r)
	if n, r = take(b2, []string{"a0.p5..z"}); n != 1 {
		t.Fatalf("127.0.0.1 at its quarter could not join 127.0.0.2's pattern: %v", r)
	}
	// An authenticated session of 127.0.0.1 is its authid's owner.
	alice := dial(from["127.0.0.1"], client.Config{AuthID: "alice", AuthMethods: []string{"ticket"},
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return "alice-secret", nil, nil }})
	if n, r = take(alice, pats("c", quarter)); n != quarter {
		t.Fatalf("alice took %d of %d new wildcard patterns: %v", n, quarter, r)
	}
	// A fourth owner fills the realm; a fifth is refused, for the realm.
	if n, r = take(dial(from["127.0.0.3"], client.Config{}), pats("d", quarter)); n != quarter {
		t.Fatalf("127.0.0.3 took %d of %d new wildcard patterns: %v", n, quarter, r)
	}
	late := dial(from["127.0.0.4"], client.Config{})
	n, r = take(late, []string{"e.x..z"})
	if n != 0 {
		t.Fatalf("127.0.0.4 took a new pattern with the realm full")
	}
	onlyRefusal("127.0.0.4 with the realm full", r, "in realm \"realm1\" (limit 4096)")

	// 127.0.0.2's patterns go with its sessions (the joiner gone first),
	// and its quarter with them: a fresh session of it makes a quarter
	// again.
	b2.Close()
	for _, s := range atk {
		s.Close()
	}
	var again int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s := dial(from["127.0.0.2"], client.Config{})
		if again, r = take(s, pats("f", quarter)); again == quarter || time.Now().After(deadline) {
			break
		}
		s.Close()
	}
	if again != quarter {
		t.Fatalf("127.0.0.2's sessions closed, a fresh one of it took %d of %d new patterns: %v", again, quarter, r)
	}
}
