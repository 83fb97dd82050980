package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// UNFIXED. deploy/secure.yaml (7f853f3) listens on 127.0.0.1 behind a
// reverse proxy that terminates TLS, which README calls a sound setup;
// but the router takes the connection's address for the client's, and
// has no way to take the client's from the proxy (X-Forwarded-For,
// Forwarded, the PROXY protocol), so every client behind it is
// 127.0.0.1 to limits.auth_failures: one client's 10 wrong passwords as
// alice lock alice out for everyone for 5 minutes (again at every
// lockout's end, for as long as it goes on), its 100 failures of any
// authids every login, and its 1,024 open challenges everyone's. exempt
// (127.0.0.1) only turns the limiter off. Here two clients reach the
// router through such a proxy, which names each in X-Forwarded-For as
// Caddy and nginx do: the first fails block_after times as alice, then
// the second logs in as alice with her password.
func TestProxiedClientsLockedOutTogether(t *testing.T) {
	// block_after 3 (and no delays before it) keeps the test short; the
	// default is 10.
	path := writeFile(t, "proxied.yaml", `listeners: [{address: "127.0.0.1:0"}]
limits: {auth_failures: {block_after: 3, delay_after: 3}}
realms:
  - name: realm1
    users:
      - {authid: alice, role: user, password: "`+mustHash(t, "alice-pw")+`"}
`)
	r := startRouter(t, "-config", path)
	proxy := func(client string) string {
		target, _ := url.Parse("http://" + r.addr)
		p := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("X-Forwarded-For", client)
			pr.Out.Header.Set("X-Real-IP", client)
			pr.Out.Header.Set("Forwarded", "for="+client)
		}}
		s := httptest.NewServer(p)
		t.Cleanup(s.Close)
		return "ws://" + s.Listener.Addr().String() + "/ws"
	}
	attacker, victim := proxy("198.51.100.7"), proxy("203.0.113.9")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	login := func(u, password string) error {
		s, err := client.Dial(ctx, client.Config{
			URL: u, Realm: "realm1", AuthID: "alice", AuthMethods: []string{"ticket"}, Serializer: proto.JSON,
			OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return password, nil, nil },
		})
		if s != nil {
			s.Close()
		}
		return err
	}
	for i := range 3 {
		var we *client.Error
		if err := login(attacker, "guess"); !errors.As(err, &we) || we.URI != proto.URIAuthenticationFailed {
			t.Fatalf("wrong password %d: %v", i+1, err)
		}
	}
	if err := login(victim, "alice-pw"); err != nil {
		t.Fatalf("another client behind the proxy, with alice's password, after 3 wrong ones from the first (block_after): %v (want WELCOME: the router counted both as 127.0.0.1)", err)
	}
}
