package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Parallel brute force against the built router, from one address
// (127.0.0.1), with the default limits (lockout after 10 failures): 60
// connections first get their CHALLENGE, then send their AUTHENTICATEs at
// once, 59 with a wrong password and the last with the right one. At most
// 10 wrong ones may be checked (authentication_failed); every other one is
// refused unchecked (authentication_denied). A 61st session, challenged
// before the lockout, sends the right password once the address is locked
// out: refused too. (The router used to check all 59 wrong guesses and
// welcome the right one, although it logged the address as blocked after
// the tenth failure.)
func TestParallelBruteForceRefused(t *testing.T) {
	const n = 60
	path := writeFile(t, "brute.yaml", `listeners: [{address: "127.0.0.1:0"}]
realms:
  - name: realm1
    users:
      - {authid: alice, role: user, password: "`+mustHash(t, "alice-pw")+`"}
`)
	r := startRouter(t, "-config", path)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var challenged sync.WaitGroup // every session has its CHALLENGE
	challenged.Add(n + 1)
	release := make(chan struct{}) // then all answer at once
	type outcome struct {
		i   int
		err error
	}
	results := make(chan outcome, n+1)
	login := func(i int, password string, wait <-chan struct{}) {
		s, err := client.Dial(ctx, client.Config{
			URL: "ws://" + r.addr + "/ws", Realm: "realm1", AuthID: "alice", AuthMethods: []string{"ticket"},
			OnChallenge: func(string, map[string]any) (string, map[string]any, error) {
				challenged.Done()
				<-wait
				return password, nil, nil
			},
		})
		if s != nil {
			s.Close()
		}
		results <- outcome{i, err}
	}
	for i := range n {
		pw := "guess-" + string(rune('a'+i%26))
		if i == n-1 {
			pw = "alice-pw"
		}
		go login(i, pw, release)
	}
	late := make(chan struct{})
	go login(n, "alice-pw", late)
	challenged.Wait()
	close(release)

	uriOf := func(err error) string {
		var we *client.Error
		if errors.As(err, &we) {
			return we.URI
		}
		if err == nil {
			return "WELCOME"
		}
		return err.Error()
	}
	count := map[string]int{}
	rightOne := ""
	for range n {
		o := <-results
		count[uriOf(o.err)]++
		if o.i == n-1 {
			rightOne = uriOf(o.err)
		}
	}
	t.Logf("60 parallel AUTHENTICATEs: %v; the right password: %s", count, rightOne)
	failed, denied, welcomed := count[proto.URIAuthenticationFailed], count[proto.URIAuthenticationDenied], count["WELCOME"]
	if failed > 10 || failed+denied+welcomed != n || welcomed > 1 {
		t.Fatalf("%d wrong passwords checked (authentication_failed), %d refused unchecked, %d welcomed; want at most 10 checked, the rest refused\n%s",
			failed, denied, welcomed, tail(r.logs(), 20))
	}
	if welcomed == 1 && rightOne != "WELCOME" {
		t.Fatal("a wrong password was welcomed")
	}
	// The late session answers once the router has locked alice out at the
	// address.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(r.logs(), "refusing an authid's authentications from an address") {
		if time.Now().After(deadline) {
			t.Fatalf("the router did not lock the address out:\n%s", tail(r.logs(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(late)
	if o := <-results; uriOf(o.err) != proto.URIAuthenticationDenied {
		t.Fatalf("the right password while locked out: %v, want %s", o.err, proto.URIAuthenticationDenied)
	}
	// alice's lockout is hers: an anonymous session from the same address
	// (a device behind the same NAT) is not refused.
	s, err := client.Dial(ctx, client.Config{URL: "rs://" + r.addr, Realm: "realm1"})
	if uriOf(err) == proto.URIAuthenticationDenied {
		t.Fatalf("anonymous HELLO from the address after alice's lockout: %v", err)
	}
	if s != nil {
		s.Close()
	}
}

// limits.auth_failures reaches the router: block_after 2 locks 127.0.0.1
// out after two wrong passwords; with 127.0.0.0/8 exempt it never is, nor
// with the same network written IPv4-mapped (::ffff:127.0.0.0/104), which
// trusted_proxies took and exempt did not: it exempted no IPv4 peer.
func TestAuthFailuresConfigApplied(t *testing.T) {
	for _, nw := range []string{"", "127.0.0.0/8", "::ffff:127.0.0.0/104"} {
		exempt := nw != ""
		ex := ""
		if exempt {
			ex = `, exempt: ["` + nw + `"]`
		}
		path := writeFile(t, "limits.yaml", `limits:
  auth_failures: {block_after: 2, address_block_after: 3, delay_after: 5, lockout: 1h`+ex+`}
realms:
  - name: realm1
    users:
      - {authid: alice, role: user, password: "`+mustHash(t, "alice-pw")+`"}
`)
		r := startRouter(t, "-config", path)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var loginAs func(authid, pw string) error
		login := func(pw string) error { return loginAs("alice", pw) }
		loginAs = func(authid, pw string) error {
			s, err := client.Dial(ctx, client.Config{URL: "ws://" + r.addr + "/ws", Realm: "realm1", AuthID: authid, AuthMethods: []string{"ticket"},
				OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return pw, nil, nil }})
			if s != nil {
				s.Close()
			}
			return err
		}
		for i := range 2 {
			if err := login("wrong"); err == nil || !strings.Contains(err.Error(), proto.URIAuthenticationFailed) {
				t.Fatalf("exempt %v: wrong password %d: %v", exempt, i, err)
			}
		}
		err := login("alice-pw")
		switch {
		case exempt && err != nil:
			t.Fatalf("exempt %s: right password after 2 failures: %v", nw, err)
		case !exempt && (err == nil || !strings.Contains(err.Error(), proto.URIAuthenticationDenied)):
			t.Fatalf("right password after 2 failures with block_after 2: %v, want %s", err, proto.URIAuthenticationDenied)
		}
		// alice's lockout is hers: bob's guess from the same address is
		// checked; it is the address's third failure (address_block_after
		// 3), which locks the whole address out: carol is refused.
		if err := loginAs("bob", "guess"); err == nil || !strings.Contains(err.Error(), proto.URIAuthenticationFailed) {
			t.Fatalf("exempt %v: bob after alice's lockout: %v, want %s", exempt, err, proto.URIAuthenticationFailed)
		}
		err = loginAs("carol", "guess")
		switch {
		case exempt && (err == nil || !strings.Contains(err.Error(), proto.URIAuthenticationFailed)):
			t.Fatalf("exempt %s: carol: %v, want %s", nw, err, proto.URIAuthenticationFailed)
		case !exempt && (err == nil || !strings.Contains(err.Error(), proto.URIAuthenticationDenied)):
			t.Fatalf("carol after the address's third failure with address_block_after 3: %v, want %s", err, proto.URIAuthenticationDenied)
		}
		cancel()
	}
}
