package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// writeJWKS writes the public keys of keys, as one key set, to file.
func writeJWKS(t *testing.T, file string, keys ...*jwks) {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := k.priv.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		set.AddKey(pub)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestJWKSRemovedKeyDropsRetained: a retained event published through the
// gateway speaks for its publisher after the request, and one published
// with a bearer token of the router's OAuth2 server is dropped when that
// token is revoked (692c1ee). A key taken out of gateway.bearer.jwks_file
// (a leaked signing key withdrawn, SIGHUP) refused its tokens from then
// on, but the retained events published with them were kept and given to
// every later subscriber for as long as the router ran: they named no
// revocation ids, so nothing could find them; and an SSE event stream
// such a token opened went on. Now the events published with a token of
// a removed key are dropped at the reload and its streams end (a problem
// event, 401), and the same user's token of a key still in the file keeps
// its events and its stream.
func TestJWKSRemovedKeyDropsRetained(t *testing.T) {
	leaked, kept := newJWKS(t), newJWKS(t)
	file := leaked.file
	writeJWKS(t, file, leaked, kept)
	yml := fmt.Sprintf(`listeners: [{address: 127.0.0.1:0}]
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
gateway:
  listen: 127.0.0.1:0
  bearer: {jwks_file: %s, issuer: "https://auth.test"}
`, file)
	g := startReloadedGateway(t, yml)
	publish := func(topic, tok string) {
		t.Helper()
		r, body := g.do(t, "POST", "/wamp/realm1/publish/"+topic, `{"args":["`+topic+`"],"options":{"acknowledge":true,"retain":true}}`,
			"Authorization", tok) // signed gives "Bearer <token>"
		if r.StatusCode != 200 {
			t.Fatalf("retained publish to %s: %d %s", topic, r.StatusCode, body)
		}
	}
	aud := map[string]any{"aud": []string{"wamp:realm1"}}
	publish("com.example.leaked", leaked.signed(t, "at+jwt", aud))
	publish("com.example.kept", kept.signed(t, "at+jwt", aud)) // the same user, alice
	for _, topic := range []string{"com.example.leaked", "com.example.kept"} {
		if !retainedAt(t, g.addr, topic, 5*time.Second) {
			t.Fatalf("%s: not retained before the reload", topic)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream := func(tok string) *bufio.Reader {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", g.base+"/wamp/realm1/events/com.example.news", nil)
		req.Header.Set("Authorization", tok)
		return openSSE(t, req, false)
	}
	leakedTok, keptTok := leaked.signed(t, "at+jwt", aud), kept.signed(t, "at+jwt", aud)
	leakedEvents, keptEvents := stream(leakedTok), stream(keptTok)
	writeJWKS(t, file, kept) // the leaked key withdrawn
	g.reload(yml)
	sseEnds(t, leakedEvents, "removed from gateway.bearer.jwks_file", "the event stream of the removed key's token")
	if r, body := g.do(t, "POST", "/wamp/realm1/publish/com.example.news", `{"args":["after"]}`, "Authorization", keptTok); r.StatusCode/100 != 2 {
		t.Fatalf("publish with the kept key's token: %d %s", r.StatusCode, body)
	}
	sseUntil(t, keptEvents, "after", "the event stream of the kept key's token")
	// The drop runs off the event loops: wait for its log line, then look.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(g.logs(), "dropped retained events") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range []struct {
		topic string
		kept  bool
	}{{"com.example.leaked", false}, {"com.example.kept", true}} {
		got := retainedAt(t, g.addr, c.topic, time.Second)
		switch {
		case got && !c.kept:
			t.Errorf("%s: the retained event published with a token of the key removed from jwks_file is still delivered", c.topic)
		case !got && c.kept:
			t.Errorf("%s: the retained event of a token of a key still in jwks_file was dropped", c.topic)
		}
	}
	if t.Failed() {
		t.Logf("log (tail):\n%s", lastLines(g.logs(), 12))
	}
}
