package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestGatewayOAuth: the binary's OAuth2 server on the gateway's listener
// (cmd mounts /oauth/ and /.well-known/ through gateway.Options.Mount),
// its access tokens accepted as the gateway's bearer tokens (oauthBearer),
// each request acting as the token's principal under the realm's RBAC,
// and a token revoked at the binary's own revocation endpoint refused.
func TestGatewayOAuth(t *testing.T) {
	key := oauthKeyFile(t)
	yml := fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
oauth:
  issuer: http://gateway.test
  key_files: [%s]
realms:
  - name: realm1
    security: true
    anonymous: true
    anonymous_role: device
    roles:
      - name: device
        permissions: [{uri: com.example., match: prefix, allow: [register]}]
      - name: user
        http_bridge: true
        permissions: [{uri: com.example., match: prefix, allow: [call], disclose: [caller]}]
      - name: service
        permissions: [{uri: com.example., match: prefix, allow: [call]}]
    users:
      - {authid: alice, roles: [user], password: "%s"}
    oauth:
      clients:
        - {id: backend, secret: "%s", roles: [service], grants: [client_credentials, password]}
gateway:
  listen: 127.0.0.1:0
`, key, mustHash(t, oaAlicePW), mustHash(t, oaBackendPW))
	cfgFile := filepath.Join(t.TempDir(), "edgewamp.yaml")
	if err := os.WriteFile(cfgFile, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGatewayRouter(t, "-config", cfgFile)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A WAMP callee (anonymous: role device) that answers who called.
	callee, err := client.Dial(ctx, client.Config{URL: "ws://" + g.addr + "/ws", Realm: "realm1"})
	if err != nil {
		t.Fatal(err)
	}
	defer callee.Close()
	if _, err := callee.Register(ctx, "com.example.whoami", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Kwargs: map[string]any{"authid": inv.CallerAuthID, "authrole": inv.CallerAuthRole}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}

	// The issuer's host is one the gateway answers for (a reverse proxy
	// that passes it on), though the gateway is on loopback and
	// gateway.hosts is empty; another name is refused (DNS rebinding).
	if r, body := g.do(t, "GET", "/.well-known/oauth-authorization-server", "", "Host", "gateway.test"); r.StatusCode != 200 {
		t.Fatalf("metadata for Host gateway.test: %d %s", r.StatusCode, body)
	}
	if r, body := g.do(t, "GET", "/.well-known/oauth-authorization-server", "", "Host", "rebound.example"); r.StatusCode != 403 {
		t.Fatalf("metadata for Host rebound.example: %d %s, want 403", r.StatusCode, body)
	}

	// RFC 8414 metadata, served by the gateway's listener.
	r, body := g.do(t, "GET", "/.well-known/oauth-authorization-server", "")
	var meta map[string]any
	if r.StatusCode != 200 || json.Unmarshal(body, &meta) != nil || meta["token_endpoint"] != "http://gateway.test/oauth/token" {
		t.Fatalf("metadata: %d %s", r.StatusCode, body)
	}

	// Tokens from the gateway's /oauth/token: alice by the password grant,
	// the backend client by client credentials.
	tokenURL := g.base + "/oauth/token"
	alice, err := (&oauth2.Config{ClientID: "backend", ClientSecret: oaBackendPW, Endpoint: oauth2.Endpoint{TokenURL: tokenURL}}).
		PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := (&clientcredentials.Config{ClientID: "backend", ClientSecret: oaBackendPW, TokenURL: tokenURL}).Token(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// alice's token: the call acts as alice/user.
	r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.whoami", `{}`, "Authorization", "Bearer "+alice.AccessToken)
	var res struct{ Kwargs map[string]any }
	if r.StatusCode != 200 || json.Unmarshal(body, &res) != nil || res.Kwargs["authid"] != "alice" || res.Kwargs["authrole"] != "user" {
		t.Fatalf("alice's call: %d %s", r.StatusCode, body)
	}
	// The service role is not granted the bridge: 403.
	r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.whoami", `{}`, "Authorization", "Bearer "+svc.AccessToken)
	expectProblem(t, r, body, 403, proto.URINotAuthorized)
	// No credential: the realm's anonymous role (device), not granted the
	// bridge either.
	r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.whoami", `{}`)
	if p := expectProblem(t, r, body, 403, proto.URINotAuthorized); !strings.Contains(p.Detail, `"device"`) {
		t.Fatalf("anonymous: %s", body)
	}
	// A token that is not one: 401 with a Bearer challenge.
	r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.whoami", `{}`, "Authorization", "Bearer "+tampered(alice.AccessToken))
	if r.StatusCode != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("tampered token: %d %v %s", r.StatusCode, r.Header, body)
	}

	// Revoked at the binary's own revocation endpoint: refused from then on.
	form := url.Values{"token": {alice.AccessToken}}
	req, _ := http.NewRequest("POST", g.base+"/oauth/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("backend", oaBackendPW)
	if resp, err := g.hc.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.whoami", `{}`, "Authorization", "Bearer "+alice.AccessToken)
	if r.StatusCode != 401 || !strings.Contains(string(body), "revoked") {
		t.Fatalf("revoked token: %d %s", r.StatusCode, body)
	}
}

// TestGatewaySSEEndsWhenTokenRevoked: an SSE stream is authorized when it
// opens. One opened with a token of the router's OAuth2 server went on
// after the token was revoked at the revocation endpoint, for as long as
// the token would have lived (an hour by default). Now it ends at once,
// with a problem event; a stream of another login of the same user stays.
func TestGatewaySSEEndsWhenTokenRevoked(t *testing.T) {
	key := oauthKeyFile(t)
	yml := fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
oauth:
  issuer: http://gateway.test
  key_files: [%s]
realms:
  - name: realm1
    security: true
    roles:
      - name: user
        http_bridge: true
        permissions: [{uri: com.example., match: prefix, allow: [subscribe, publish]}]
    users:
      - {authid: alice, roles: [user], password: "%s"}
    oauth:
      clients:
        - {id: backend, secret: "%s", roles: [user], grants: [password]}
gateway:
  listen: 127.0.0.1:0
`, key, mustHash(t, oaAlicePW), mustHash(t, oaBackendPW))
	cfgFile := filepath.Join(t.TempDir(), "edgewamp.yaml")
	if err := os.WriteFile(cfgFile, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGatewayRouter(t, "-config", cfgFile)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conf := &oauth2.Config{ClientID: "backend", ClientSecret: oaBackendPW, Endpoint: oauth2.Endpoint{TokenURL: g.base + "/oauth/token"}}
	revoked, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW) // another login
	if err != nil {
		t.Fatal(err)
	}
	open := func(tok string) (*http.Response, *bufio.Reader) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", g.base+"/wamp/realm1/events/com.example.news", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := (&http.Client{}).Do(req) // no client timeout: the stream lasts
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		br := bufio.NewReader(resp.Body)
		if line, err := br.ReadString('\n'); resp.StatusCode != 200 || err != nil || line != ": subscribed\n" {
			t.Fatalf("stream: %d %q %v", resp.StatusCode, line, err)
		}
		return resp, br
	}
	_, gone := open(revoked.AccessToken)
	_, stays := open(kept.AccessToken)

	form := url.Values{"token": {revoked.AccessToken}}
	req, _ := http.NewRequest("POST", g.base+"/oauth/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("backend", oaBackendPW)
	if resp, err := g.hc.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}

	// The revoked token's stream ends (well before its keepalive or the
	// token's expiry), its last event a problem saying why.
	ended := make(chan string, 1)
	go func() {
		var all strings.Builder
		for {
			line, err := gone.ReadString('\n')
			all.WriteString(line)
			if err != nil {
				ended <- all.String()
				return
			}
		}
	}()
	select {
	case rest := <-ended:
		if !strings.Contains(rest, "event: problem") || !strings.Contains(rest, "revoked") {
			t.Fatalf("the stream ended with %q, want a problem event saying the token was revoked", rest)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the SSE stream of a revoked token stays open")
	}

	// The other login's stream still gets events.
	if r, body := g.do(t, "POST", "/wamp/realm1/publish/com.example.news", `{"args":["still here"]}`, "Authorization", "Bearer "+kept.AccessToken); r.StatusCode/100 != 2 {
		t.Fatalf("publish: %d %s", r.StatusCode, body)
	}
	for {
		line, err := stays.ReadString('\n')
		if err != nil {
			t.Fatalf("the other login's stream ended: %v", err)
		}
		if strings.Contains(line, "still here") {
			break
		}
	}
}

// withdrawYAML is TestGatewaySSEEndsWhenTokenWithdrawn's configuration:
// alice holds roles aliceRoles; clients lists the OAuth2 clients (backend,
// frontend) that remain.
func withdrawYAML(t *testing.T, key, aliceRoles string, clients ...string) string {
	var cl strings.Builder
	for _, c := range clients {
		fmt.Fprintf(&cl, "        - {id: %s, secret: %q, roles: [user], grants: [password]}\n", c, mustHash(t, c+"-client-secret"))
	}
	return fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
oauth:
  issuer: http://gateway.test
  key_files: [%s]
realms:
  - name: realm1
    security: true
    anonymous: true
    anonymous_role: device
    roles:
      - name: device
        permissions: [{uri: com.example., match: prefix, allow: [register]}]
      - name: user
        http_bridge: true
        permissions: [{uri: com.example., match: prefix, allow: [call, subscribe, publish]}]
      - name: viewer
        http_bridge: true
        permissions: [{uri: com.example., match: prefix, allow: [subscribe]}]
    users:
      - {authid: alice, roles: [%s], password: "%s"}
    oauth:
      clients:
%sgateway:
  listen: 127.0.0.1:0
`, key, aliceRoles, mustHash(t, oaAlicePW), cl.String())
}

// sseUntil reads br's lines until one holds want (within 10 s) and
// returns what it read; the stream must not end first. With want "", it
// reads to the stream's end.
func sseUntil(t *testing.T, br *bufio.Reader, want, what string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var all strings.Builder
		for {
			line, err := br.ReadString('\n')
			all.WriteString(line)
			if (want != "" && strings.Contains(line, want)) || err != nil {
				got <- all.String()
				return
			}
		}
	}()
	select {
	case s := <-got:
		if want == "" || strings.Contains(s, want) {
			return s
		}
		t.Fatalf("%s: the stream ended before %q:\n%s", what, want, s)
	case <-time.After(10 * time.Second):
		if want == "" {
			t.Fatalf("%s: the stream stays open", what)
		}
		t.Fatalf("%s: no %q within 10 s", what, want)
	}
	return ""
}

// TestGatewaySSEEndsWhenTokenWithdrawn: the gateway's SSE streams (event
// streams, and calls streaming progressive results) opened with access
// tokens of the router's own OAuth2 server. A streamed call went on after
// its token was revoked (only event streams ended), and a reload that
// removed the token's client, or the role its user held, ended neither
// kind: they went on until the token expired or the call ended, and the
// gateway still took the token for new requests. Now each ends with a
// problem event saying why, its call canceled at the router (the callee
// interrupted), the token is refused from then on, and the streams of
// tokens the reload leaves alone go on.
func TestGatewaySSEEndsWhenTokenWithdrawn(t *testing.T) {
	key := oauthKeyFile(t)
	g := startReloadedGateway(t, withdrawYAML(t, key, "user", "backend", "frontend"))
	reload := g.reload
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A callee (anonymous: role device) that streams until interrupted.
	waitInterrupted := tickCallee(ctx, t, g.addr)
	login := func(clientID string) string {
		t.Helper()
		conf := &oauth2.Config{ClientID: clientID, ClientSecret: clientID + "-client-secret", Endpoint: oauth2.Endpoint{TokenURL: g.base + "/oauth/token"}}
		tok, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW)
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	const events, call = "/wamp/realm1/events/com.example.news", "/wamp/realm1/call/com.example.tick"
	open := func(path, tok string) *bufio.Reader {
		t.Helper()
		method, body := "GET", ""
		if path == call {
			method, body = "POST", `{"options":{"timeout":120000}}`
		}
		req, _ := http.NewRequestWithContext(ctx, method, g.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		return openSSE(t, req, path == call)
	}
	flowing := func(what, tok string, evs, calls []*bufio.Reader) {
		t.Helper()
		if r, body := g.do(t, "POST", "/wamp/realm1/publish/com.example.news", `{"args":["`+what+`"]}`, "Authorization", "Bearer "+tok); r.StatusCode/100 != 2 {
			t.Fatalf("%s: publish: %d %s", what, r.StatusCode, body)
		}
		for _, br := range evs {
			sseUntil(t, br, what, what)
		}
		for _, br := range calls {
			sseUntil(t, br, "event: progress", what)
		}
	}
	refused := func(tok, detail, what string) {
		t.Helper()
		r, body := g.do(t, "POST", call, `{}`, "Authorization", "Bearer "+tok)
		if r.StatusCode != 401 || !strings.Contains(string(body), detail) {
			t.Fatalf("%s: a call with the token: %d %s, want 401 saying %q", what, r.StatusCode, body, detail)
		}
	}

	// A streamed call whose token is revoked at the revocation endpoint.
	revoked := login("backend")
	revokedCall := open(call, revoked)
	form := url.Values{"token": {revoked}}
	req, _ := http.NewRequest("POST", g.base+"/oauth/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("backend", "backend-client-secret")
	if resp, err := g.hc.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	sseEnds(t, revokedCall, "the token was revoked", "the streamed call of a revoked token")
	waitInterrupted("the streamed call of a revoked token")

	viaBackend, viaFrontend := login("backend"), login("frontend")
	backendEvents, backendCall := open(events, viaBackend), open(call, viaBackend)
	frontendEvents, frontendCall := open(events, viaFrontend), open(call, viaFrontend)
	reload(withdrawYAML(t, key, "user", "backend", "frontend")) // nothing changes
	flowing("after a reload that changes nothing", viaFrontend, []*bufio.Reader{backendEvents, frontendEvents}, []*bufio.Reader{backendCall, frontendCall})

	// The backend client removed: its token's streams end, the token is
	// refused; the frontend's go on.
	reload(withdrawYAML(t, key, "user", "frontend"))
	sseEnds(t, backendEvents, "the client was removed", "the event stream of the removed client's token")
	sseEnds(t, backendCall, "the client was removed", "the streamed call of the removed client's token")
	waitInterrupted("the streamed call of the removed client's token")
	refused(viaBackend, "the client was removed", "the removed client's token")
	flowing("after a reload that removes another client", viaFrontend, []*bufio.Reader{frontendEvents}, []*bufio.Reader{frontendCall})

	// Role user taken from alice: the role her token took is gone.
	reload(withdrawYAML(t, key, "viewer", "frontend"))
	sseEnds(t, frontendEvents, "the role was removed", "the event stream of a token whose role was removed")
	sseEnds(t, frontendCall, "the role was removed", "the streamed call of a token whose role was removed")
	waitInterrupted("the streamed call of a token whose role was removed")
	refused(viaFrontend, "the role was removed", "a token whose role was removed")
}

// reloadedGateway is a router with a gateway, started on a configuration
// file that the test rewrites and reloads (SIGHUP).
type reloadedGateway struct {
	*gwRouter
	t                 *testing.T
	file              string
	reloaded, refused int // the reloads' log lines so far
}

func startReloadedGateway(t *testing.T, yml string) *reloadedGateway {
	t.Helper()
	g := &reloadedGateway{t: t, file: filepath.Join(t.TempDir(), "edgewamp.yaml")}
	g.write(yml)
	g.gwRouter = startGatewayRouter(t, "-config", g.file)
	return g
}

func (g *reloadedGateway) write(yml string) {
	g.t.Helper()
	if err := os.WriteFile(g.file, []byte(yml), 0o600); err != nil {
		g.t.Fatal(err)
	}
}

func (g *reloadedGateway) hup(yml string) {
	g.t.Helper()
	g.write(yml)
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		g.t.Fatal(err)
	}
}

// reload installs yml and waits for the router to log the reload.
func (g *reloadedGateway) reload(yml string) {
	g.t.Helper()
	g.hup(yml)
	g.reloaded++
	g.waitLog("SIGHUP: configuration reloaded", g.reloaded)
}

// reloadRefused installs yml, which the router must refuse, and waits for
// it to log the refusal.
func (g *reloadedGateway) reloadRefused(yml string) {
	g.t.Helper()
	g.hup(yml)
	g.refused++
	g.waitLog("SIGHUP: configuration refused", g.refused)
}

// tickCallee registers com.example.tick on the router at addr (realm1,
// anonymous): it sends a progressive result every 20 ms until its call is
// interrupted. The function it returns waits up to 10 s for the next
// interruption.
func tickCallee(ctx context.Context, t *testing.T, addr string) (waitInterrupted func(what string)) {
	t.Helper()
	callee, err := client.Dial(ctx, client.Config{URL: "ws://" + addr + "/ws", Realm: "realm1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { callee.Close() })
	interrupted := make(chan struct{}, 16)
	if _, err := callee.Register(ctx, "com.example.tick", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		for i := 0; ; i++ {
			if err := inv.SendProgress([]any{i}, nil); err != nil {
				return nil, err
			}
			select {
			case <-ctx.Done():
				if context.Cause(ctx) == client.ErrInterrupted {
					interrupted <- struct{}{}
				}
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}, nil); err != nil {
		t.Fatal(err)
	}
	return func(what string) {
		t.Helper()
		select {
		case <-interrupted:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the callee was not interrupted", what)
		}
	}
}

// openSSE sends req for an SSE stream (no client timeout: the stream
// lasts) and returns it once it flows: a streamed call's first progress,
// an event stream's ": subscribed".
func openSSE(t *testing.T, req *http.Request, streamedCall bool) *bufio.Reader {
	t.Helper()
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	br := bufio.NewReader(resp.Body)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(br)
		t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	if streamedCall {
		sseUntil(t, br, "event: progress", "the streamed call")
	} else {
		sseUntil(t, br, ": subscribed", "the event stream")
	}
	return br
}

// sseEnds reads a stream to its end: a problem event whose detail holds
// detail.
func sseEnds(t *testing.T, br *bufio.Reader, detail, what string) {
	t.Helper()
	rest := sseUntil(t, br, "", what)
	if !strings.Contains(rest, "event: problem") || !strings.Contains(rest, detail) {
		t.Fatalf("%s: the stream ended with %q, want a problem event saying %q", what, rest, detail)
	}
}

// README (OAuth2): "A reload that removes its client or principal, or the
// role it took, ends it too", and on the HTTP side such a token "is refused
// at once". A WAMP login with an access token whose client a reload
// removed is not refused: tokenVerifier.verify checks the signature, the
// expiry and the revocations (VerifyAccessToken), not whether the grant
// still stands (StillValid), so the router sends WELCOME, announces the
// session (on_join), counts a successful login, and only then
// (holdCredential) ends it with GOODBYE wamp.close.killed. A client
// library takes the WELCOME for a login that worked and the GOODBYE for a
// session the router closed, and reconnects (Autobahn's default), in a
// loop; the login should be refused: ABORT wamp.error.authentication_denied,
// as for a revoked token.
func TestWAMPLoginWithWithdrawnTokenAborted(t *testing.T) {
	key := oauthKeyFile(t)
	g := startReloadedGateway(t, withdrawYAML(t, key, "user", "backend", "frontend"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conf := &oauth2.Config{ClientID: "backend", ClientSecret: "backend-client-secret", Endpoint: oauth2.Endpoint{TokenURL: g.base + "/oauth/token"}}
	tok, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := ticketLoginAt(g.addr, tok.AccessToken); err != nil {
		t.Fatalf("login with the token before the reload: %v", err)
	} else {
		s.Close()
	}
	g.reload(withdrawYAML(t, key, "user", "frontend")) // the backend client removed
	s, err := ticketLoginAt(g.addr, tok.AccessToken)
	if err == nil {
		id := s.ID()
		var why error
		select {
		case <-s.Done():
			why = s.Err()
		case <-time.After(5 * time.Second):
		}
		s.Close()
		t.Fatalf("a WAMP login with an access token whose client the reload removed was welcomed (session %d), then ended: %v; "+
			"want ABORT %s", id, why, proto.URIAuthenticationDenied)
	}
	if wampURI(err) != proto.URIAuthenticationDenied {
		t.Fatalf("login with the removed client's token: %v, want %s", err, proto.URIAuthenticationDenied)
	}
}

// rolesRouteYAML: alice holds aliceRoles; gateway routes that publish
// (/admin/publish) and call com.example.tick (/admin/tick) require role
// admin (auth.roles); the callee is anonymous (role device).
func rolesRouteYAML(t *testing.T, key, aliceRoles string) string {
	return fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
oauth:
  issuer: http://gateway.test
  key_files: [%s]
realms:
  - name: realm1
    security: true
    anonymous: true
    anonymous_role: device
    roles:
      - name: device
        permissions: [{uri: com.example., match: prefix, allow: [register]}]
      - name: user
        http_bridge: true
        permissions: [{uri: com.example., match: prefix, allow: [call, subscribe, publish]}]
      - name: admin
        http_bridge: true
        permissions: [{uri: com.example., match: prefix, allow: [call, subscribe, publish]}]
    users:
      - {authid: alice, roles: [%s], password: "%s"}
    oauth:
      clients:
        - {id: backend, secret: %q, roles: [user], grants: [password]}
gateway:
  listen: 127.0.0.1:0
  routes:
    - {name: admin-publish, method: POST, path: /admin/publish, realm: realm1, publish: com.example.admin,
       args: ["$/body"], acknowledge: true, auth: {type: bearer, roles: [admin]}}
    - {name: admin-tick, method: POST, path: /admin/tick, realm: realm1, call: com.example.tick,
       timeout: 120s, auth: {type: bearer, roles: [admin]}}
`, key, aliceRoles, mustHash(t, oaAlicePW), mustHash(t, "backend-client-secret"))
}

// A reload that takes role admin from alice (her token's roles: user,
// admin) takes it from the token she got before too: a route that
// requires admin (auth.roles) refuses it (403), and the call she streams
// on such a route (SSE) ends. The gateway re-checked each request's token
// against the reloaded configuration (oauthBearer -> withdrawn ->
// StillValid) for its first role only (the authrole, user here), and
// matched auth.roles against the token's roles as issued: the token
// passed the admin-only route for as long as it lived, and the stream
// went on. README: "Each HTTP request is checked anyway, a token whose
// client, user or role a reload removed as a revoked one". Now the
// principal's roles are those of the token's that alice still holds
// (oauth.Server.HeldRoles), for requests and for the streams a reload
// re-checks (gateway.BearerRoles).
func TestGatewayRouteRoleRemovedByReload(t *testing.T) {
	key := oauthKeyFile(t)
	g := startReloadedGateway(t, rolesRouteYAML(t, key, "user, admin"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitInterrupted := tickCallee(ctx, t, g.addr)
	login := func() string {
		t.Helper()
		conf := &oauth2.Config{ClientID: "backend", ClientSecret: "backend-client-secret", Endpoint: oauth2.Endpoint{TokenURL: g.base + "/oauth/token"}}
		tok, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW)
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	old := login()
	if r, body := g.do(t, "POST", "/admin/publish", `{"x":1}`, "Authorization", "Bearer "+old); r.StatusCode/100 != 2 {
		t.Fatalf("before the reload, alice (user, admin): %d %s", r.StatusCode, body)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", g.base+"/admin/tick", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+old)
	stream := openSSE(t, req, true)
	g.reload(rolesRouteYAML(t, key, "user"))
	fresh := login()
	rf, bf := g.do(t, "POST", "/admin/publish", `{"x":2}`, "Authorization", "Bearer "+fresh)
	ro, bo := g.do(t, "POST", "/admin/publish", `{"x":3}`, "Authorization", "Bearer "+old)
	t.Logf("after the reload took admin from alice: a new token %d %s; the token issued before %d %s", rf.StatusCode, bf, ro.StatusCode, bo)
	if rf.StatusCode != 403 {
		t.Fatalf("a token issued after the reload: %d, want 403", rf.StatusCode)
	}
	if ro.StatusCode != 403 {
		t.Errorf("alice's token issued before the reload, on the admin-only route: %d %s, want 403 (the role was removed)", ro.StatusCode, bo)
	}
	sseEnds(t, stream, "none of the roles", "alice's streamed call on the admin-only route")
	waitInterrupted("alice's streamed call on the admin-only route")
	// Her token still serves what role user may do.
	if r, body := g.do(t, "POST", "/wamp/realm1/publish/com.example.news", `{"args":["still user"]}`, "Authorization", "Bearer "+old); r.StatusCode/100 != 2 {
		t.Errorf("alice's token issued before the reload, on the bridge as user: %d %s", r.StatusCode, body)
	}
}
