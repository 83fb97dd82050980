package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// WAMP logins with OAuth2 access tokens, end to end: the built binary, run
// with an oauth: configuration and a signing key file, and third-party
// WAMP clients (Autobahn|JS and Autobahn|Python, WebSocket and RawSocket)
// whose ticket is an access token.
//
// Every token comes from a binary's own endpoints (on its gateway): the
// valid ones from the router under test (the device flow, x/oauth2 as the
// device and a person approving through the page's form; client
// credentials), the expired one from a second binary with a 1 s lifetime,
// and the foreign one from a third with another issuer URL, both with the
// same key file.
//
// Cases (scripts' "jwt" mode; each fresh router sees 7 refusals, so the
// per-address rate limiter delays the last four by 0.5-2 s):
//   - the device token, no authid: WELCOME alice/user, provider jwt, and
//     the session can register and call;
//   - the same with authid alice and authrole admin;
//   - a client_credentials token: WELCOME backend/service;
//   - alice's password (static ticket) still works on the realm;
//   - expired, another realm's, another principal's (authid bob):
//     authentication_denied;
//   - tampered signature, alg none, another issuer: authentication_failed;
//   - a role the token lacks: no_such_role.
// Revocation and expiry of a device-flow token with live sessions:
// TestOAuthDeviceFlowBinary.

type jwtCase struct {
	Name     string            `json:"name"`
	Ticket   string            `json:"ticket"`
	AuthID   string            `json:"authid,omitempty"`
	AuthRole string            `json:"authrole,omitempty"`
	Want     map[string]string `json:"want,omitempty"`
	Abort    string            `json:"abort,omitempty"`
}

func welcomeAs(authid, authrole, provider string) map[string]string {
	return map[string]string{"authid": authid, "authrole": authrole, "authmethod": "ticket", "authprovider": provider}
}

func TestInteropJWTTickets(t *testing.T) {
	key := oauthKeyFile(t)
	yml := oauthYAML(t, oaIssuer, key, "", "")
	short := startRouter(t, "-config", writeFile(t, "short.yaml", oauthYAML(t, oaIssuer, key, "", "      access_token_lifetime: 1s\n")))
	other := startRouter(t, "-config", writeFile(t, "other.yaml", oauthYAML(t, "http://other.test", key, "", "")))
	expired := ccAt(t, "http://"+short.gw, "backend", oaBackendPW)
	foreign := ccAt(t, "http://"+other.gw, "backend", oaBackendPW)
	// exp is rounded up to the second (so that a token lives its
	// expires_in): a 1 s token lives up to 2 s.
	time.Sleep(2100 * time.Millisecond)

	for _, c := range []authClient{
		{"autobahn-js", "ws", "json"},
		{"autobahn-js", "rs", "json"},
		{"autobahn-py", "ws", "msgpack"},
		{"autobahn-py", "rs", "json"},
	} {
		t.Run(c.String(), func(t *testing.T) {
			interopNeeds(t, c.needs()...)
			t.Parallel()
			path := writeFile(t, "oauth.yaml", yml)
			rt := startRouter(t, "-config", path)
			base := "http://" + rt.gw
			dev := deviceFlowAt(t, base, "alice", oaAlicePW).AccessToken
			svc := ccAt(t, base, "backend", oaBackendPW)
			r2 := ccAt(t, base, "r2", oaR2PW)
			cases := []jwtCase{
				{Name: "device token", Ticket: dev, Want: welcomeAs("alice", "user", "jwt")},
				{Name: "device token as admin", Ticket: dev, AuthID: "alice", AuthRole: "admin", Want: welcomeAs("alice", "admin", "jwt")},
				{Name: "service token", Ticket: svc, Want: welcomeAs("backend", "service", "jwt")},
				{Name: "password still works", Ticket: oaAlicePW, AuthID: "alice", Want: welcomeAs("alice", "user", "static")},
				{Name: "expired", Ticket: expired, Abort: proto.URIAuthenticationDenied},
				{Name: "tampered", Ticket: tampered(dev), Abort: proto.URIAuthenticationFailed},
				{Name: "alg none", Ticket: algNone(dev), Abort: proto.URIAuthenticationFailed},
				{Name: "other realm", Ticket: r2, Abort: proto.URIAuthenticationDenied},
				{Name: "other issuer", Ticket: foreign, Abort: proto.URIAuthenticationFailed},
				{Name: "other principal", Ticket: dev, AuthID: "bob", Abort: proto.URIAuthenticationDenied},
				{Name: "role not granted", Ticket: dev, AuthRole: "service", Abort: proto.URINoSuchRole},
			}
			creds, _ := json.Marshal(map[string]any{"jwt_cases": cases})
			tokens := []string{dev, svc, expired, r2, foreign}
			p := c.proc(rt.addr, "jwt")
			for i, a := range p.argv {
				if a == "--creds" {
					p.argv[i+1] = string(creds)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
			defer cancel()
			r := &interopRun{p: p}
			if err := r.start(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case <-r.exited:
			case <-ctx.Done():
				<-r.exited
			}
			reportInterop(t, r)
			logs := rt.logs()
			for _, s := range append(tokens, oaAlicePW) {
				if strings.Contains(logs, s) {
					t.Errorf("a token or password (%.10s…) appears in the router log", s)
				}
			}
			if n := strings.Count(logs, "authentication failed"); n != 7 {
				t.Errorf("router logged %d failed authentications, want 7", n)
			}
			if t.Failed() {
				t.Logf("router log (tail):\n%s", tail(logs, 40))
			}
		})
	}
}
