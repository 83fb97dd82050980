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

// deploy/secure.yaml (7f853f3) listens on 127.0.0.1 behind a reverse
// proxy that terminates TLS, which README calls a sound setup; but the
// router took the connection's address for the client's, and had no way
// to take the client's from the proxy, so every client behind it was
// 127.0.0.1 to limits.auth_failures: one client's 10 wrong passwords as
// alice locked alice out for everyone for 5 minutes, its 100 failures of
// any authids every login, and its 1,024 open challenges were
// everyone's. With listeners[].trusted_proxies naming the proxy, the
// upgrade's X-Forwarded-For names the client. Here two clients reach the
// router through such a proxy, which names each in X-Forwarded-For as
// Caddy and nginx do: the first fails block_after times as alice, then
// the second logs in as alice with her password, and the first is still
// locked out.
func TestProxiedClientsLockedOutTogether(t *testing.T) {
	// block_after 3 (and no delays before it) keeps the test short; the
	// default is 10.
	path := writeFile(t, "proxied.yaml", `listeners: [{address: "127.0.0.1:0", trusted_proxies: [127.0.0.1, "::1"]}]
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
	var we *client.Error
	if err := login(attacker, "alice-pw"); !errors.As(err, &we) || we.URI != proto.URIAuthenticationDenied {
		t.Fatalf("the first client, locked out as alice, with her password: %v (want %s)", err, proto.URIAuthenticationDenied)
	}
}
