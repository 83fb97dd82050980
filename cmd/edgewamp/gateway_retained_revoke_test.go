package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/edgewamp/edgewamp/client"
)

// retainedBearerYAML: alice (role user) logs in through the client
// backend, which also holds tokens of its own (role service); both roles
// may publish through the gateway's bridge, and anonymous WAMP sessions
// (role reader) may subscribe.
const retainedBearerYAML = `listeners: [{address: "127.0.0.1:0"}]
oauth:
  issuer: http://gateway.test
  key_files: [KEYFILE]
realms:
  - name: realm1
    security: true
    anonymous: true
    anonymous_role: reader
    roles:
      - name: reader
        permissions: [{uri: com.example., match: prefix, allow: [subscribe]}]
      - name: user
        http_bridge: true
        permissions: [{uri: com.example., match: prefix, allow: [publish, subscribe]}]
      - name: service
        http_bridge: true
        permissions: [{uri: com.example., match: prefix, allow: [publish, subscribe]}]
    users:
      - {authid: alice, roles: [user], password: "ALICE"}
    oauth:
      clients:
        - {id: backend, secret: "BACKEND", roles: [service], grants: [client_credentials, password]}
`

// publishRetainedWith publishes args ["<topic>"] to topic, retained,
// through the gateway of base with bearer token tok.
func publishRetainedWith(t *testing.T, b *oauthBin, topic, tok string) {
	t.Helper()
	g := &gwRouter{router: b.router, base: b.base, hc: b.hc}
	r, body := g.do(t, "POST", "/wamp/realm1/publish/"+topic, `{"args":["`+topic+`"],"options":{"acknowledge":true,"retain":true}}`,
		"Authorization", "Bearer "+tok)
	if r.StatusCode != 200 {
		t.Fatalf("retained publish to %s: %d %s", topic, r.StatusCode, body)
	}
}

// retainedAt reports whether a get_retained SUBSCRIBE to topic at the
// WAMP listener addr is given a retained event (within wait).
func retainedAt(t *testing.T, addr, topic string, wait time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: "ws://" + addr + "/ws", Realm: "realm1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := make(chan *client.Event, 1)
	if _, err := s.Subscribe(ctx, topic, func(ev *client.Event) {
		select {
		case got <- ev:
		default:
		}
	}, &client.SubscribeOptions{GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
		return true
	case <-time.After(wait):
		return false
	}
}

// TestGatewayRetainedDroppedWhenTokenRevoked: a retained event published
// through the gateway with a bearer token speaks for that token after the
// request, as one a WAMP session logged in with the token retained does:
// revoking the token at /oauth/revoke drops it, as it drops the WAMP
// session's. Before, the gateway's pooled sessions are per principal, not
// per token, and carried no trace of the token: a revoked (leaked) token's
// retained events were given to every later subscriber for as long as the
// router ran. Another login of the same user keeps its own; a client's
// own token (client_credentials: revoked through the client's cut-off,
// which the router re-checks) is dropped too.
func TestGatewayRetainedDroppedWhenTokenRevoked(t *testing.T) {
	yml := strings.NewReplacer("KEYFILE", oauthKeyFile(t), "ALICE", mustHash(t, oaAlicePW), "BACKEND", mustHash(t, oaBackendPW)).Replace(retainedBearerYAML)
	b, _ := startOAuthBin(t, yml)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conf := b.oauth2Config("backend", oaBackendPW)
	revoked, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW) // another login of alice
	if err != nil {
		t.Fatal(err)
	}
	svc, err := (&clientcredentials.Config{ClientID: "backend", ClientSecret: oaBackendPW, TokenURL: b.base + "/oauth/token"}).Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	publishRetainedWith(t, b, "com.example.revoked", revoked.AccessToken)
	publishRetainedWith(t, b, "com.example.kept", kept.AccessToken)
	publishRetainedWith(t, b, "com.example.service", svc.AccessToken)
	for _, topic := range []string{"com.example.revoked", "com.example.kept", "com.example.service"} {
		if !retainedAt(t, b.addr, topic, 5*time.Second) {
			t.Fatalf("%s: not retained before any revocation", topic)
		}
	}

	for _, tok := range []string{revoked.AccessToken, svc.AccessToken} {
		if st, body := b.post(t, "/oauth/revoke", url.Values{"token": {tok}}, "backend", oaBackendPW); st != 200 {
			t.Fatalf("revoke: %d %v", st, body)
		}
	}
	// The drops run off the event loops: wait for their log lines (two:
	// the token's, and the client cut-off's re-check), then look.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(b.logs(), "the credential they were published with was revoked") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range []struct {
		topic string
		kept  bool
	}{{"com.example.revoked", false}, {"com.example.service", false}, {"com.example.kept", true}} {
		got := retainedAt(t, b.addr, c.topic, time.Second)
		switch {
		case got && !c.kept:
			t.Errorf("%s: the retained event published with the revoked token is still delivered", c.topic)
		case !got && c.kept:
			t.Errorf("%s: the retained event of another login of the same user was dropped", c.topic)
		}
	}
	if t.Failed() {
		t.Logf("log (tail):\n%s", tail(b.logs(), 20))
	}
}

// meshEventuallyRetained waits until a get_retained on topic at addr
// finds an event (want) or none.
func meshEventuallyRetained(t *testing.T, addr, topic string, want bool) {
	t.Helper()
	meshEventually(t, 15*time.Second, func() error {
		if got := retainedAt(t, addr, topic, 500*time.Millisecond); got != want {
			return fmt.Errorf("%s at %s: retained %v, want %v", topic, addr, got, want)
		}
		return nil
	})
}

// TestGatewayRetainedDroppedWhenTokenUserRemoved: a reload that removes
// the user a bearer token was issued to drops the retained events
// published through the gateway with the token, as it drops those of the
// user's WAMP sessions (README, Reload): the token's credential's Check
// (the OAuth2 server's: "the user was removed") is asked again by the
// router's re-check of the retained events. Before a retained
// publication carried its token's credential (gateway bearerCredential),
// the gateway's session of the user kept them for as long as the router
// ran. Another user's stays.
func TestGatewayRetainedDroppedWhenTokenUserRemoved(t *testing.T) {
	yml := strings.NewReplacer("KEYFILE", oauthKeyFile(t), "ALICE", mustHash(t, oaAlicePW), "BACKEND", mustHash(t, oaBackendPW)).Replace(retainedBearerYAML)
	yml = strings.Replace(yml, "    users:\n", "    users:\n      - {authid: bob, roles: [user], password: \"BOBPW\"}\n", 1)
	yml = strings.Replace(yml, "BOBPW", mustHash(t, "bob-oauth-pw"), 1)
	gw := "gateway:\n  listen: 127.0.0.1:0\n"
	g := startReloadedGateway(t, yml+gw)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := &oauthBin{router: g.router, base: g.base, hc: g.hc}
	conf := b.oauth2Config("backend", oaBackendPW)
	alice, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := conf.PasswordCredentialsToken(ctx, "bob", "bob-oauth-pw")
	if err != nil {
		t.Fatal(err)
	}
	publishRetainedWith(t, b, "com.example.alice", alice.AccessToken)
	publishRetainedWith(t, b, "com.example.bob", bob.AccessToken)
	for _, topic := range []string{"com.example.alice", "com.example.bob"} {
		if !retainedAt(t, g.addr, topic, 5*time.Second) {
			t.Fatalf("%s: not retained before the reload", topic)
		}
	}
	// alice removed; the reload completes once its re-check of the
	// retained events has run.
	line := "      - {authid: alice, roles: [user], password: \"" + mustHashOf(yml, "alice") + "\"}\n"
	if !strings.Contains(yml, line) {
		t.Fatalf("no alice line in\n%s", yml)
	}
	g.reload(strings.Replace(yml, line, "", 1) + gw)
	if retainedAt(t, g.addr, "com.example.alice", time.Second) {
		t.Errorf("the retained event published with the token of a user the reload removed is still delivered\n%s", tail(g.logs(), 10))
	}
	if !retainedAt(t, g.addr, "com.example.bob", 5*time.Second) {
		t.Error("another user's retained event was dropped by the reload")
	}
}

// mustHashOf returns the password hash of authid's line in yml.
func mustHashOf(yml, authid string) string {
	_, rest, _ := strings.Cut(yml, "{authid: "+authid+", roles: [user], password: \"")
	h, _, _ := strings.Cut(rest, "\"")
	return h
}

// TestGatewayRetainedOfRefreshedTokenDroppedWithItsLogin: a login's
// access tokens (one refresh-token family, one grant id) each keep
// their retained events when another of them is revoked, and lose them
// all when the login is (its refresh token revoked): as a WAMP
// session's retained events are. The access token of before a refresh
// is not revoked by the refresh, so its event stays too until then.
func TestGatewayRetainedOfRefreshedTokenDroppedWithItsLogin(t *testing.T) {
	yml := strings.NewReplacer("KEYFILE", oauthKeyFile(t), "ALICE", mustHash(t, oaAlicePW), "BACKEND", mustHash(t, oaBackendPW),
		"grants: [client_credentials, password]", "grants: [client_credentials, password, refresh_token]").Replace(retainedBearerYAML)
	b, _ := startOAuthBin(t, yml)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conf := b.oauth2Config("backend", oaBackendPW)
	first, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	if first.RefreshToken == "" {
		t.Fatal("the login got no refresh token")
	}
	old, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW) // another login of alice
	if err != nil {
		t.Fatal(err)
	}
	second, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		t.Fatal(err)
	}
	third, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: second.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		t.Fatal(err)
	}
	publishRetainedWith(t, b, "com.example.first", first.AccessToken)
	publishRetainedWith(t, b, "com.example.second", second.AccessToken)
	publishRetainedWith(t, b, "com.example.third", third.AccessToken)
	publishRetainedWith(t, b, "com.example.other", old.AccessToken)
	look := func(when string, want map[string]bool) {
		t.Helper()
		for topic, kept := range want {
			if got := retainedAt(t, b.addr, topic, time.Second); got != kept {
				t.Errorf("%s: %s retained %v, want %v", when, topic, got, kept)
			}
		}
	}
	look("before any revocation", map[string]bool{"com.example.first": true, "com.example.second": true, "com.example.third": true, "com.example.other": true})

	// The second access token alone.
	if st, body := b.post(t, "/oauth/revoke", url.Values{"token": {second.AccessToken}}, "backend", oaBackendPW); st != 200 {
		t.Fatalf("revoke: %d %v", st, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(b.logs(), "the credential they were published with was revoked") < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	look("the second access token revoked", map[string]bool{"com.example.first": true, "com.example.second": false, "com.example.third": true, "com.example.other": true})

	// The login: its current refresh token.
	if st, body := b.post(t, "/oauth/revoke", url.Values{"token": {third.RefreshToken}, "token_type_hint": {"refresh_token"}}, "backend", oaBackendPW); st != 200 {
		t.Fatalf("revoke: %d %v", st, body)
	}
	deadline = time.Now().Add(10 * time.Second)
	for strings.Count(b.logs(), "the credential they were published with was revoked") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	look("the login revoked", map[string]bool{"com.example.first": false, "com.example.third": false, "com.example.other": true})
	if t.Failed() {
		t.Logf("log (tail):\n%s", tail(b.logs(), 20))
	}
}
