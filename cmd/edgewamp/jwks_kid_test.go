package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// jwksWithKid is the Ed25519 key priv named kid (a jwks whose file the
// caller writes: writeJWKS).
func jwksWithKid(t *testing.T, priv ed25519.PrivateKey, kid string) *jwks {
	t.Helper()
	k, err := jwk.FromRaw(priv)
	if err != nil {
		t.Fatal(err)
	}
	k.Set(jwk.KeyIDKey, kid)
	k.Set(jwk.AlgorithmKey, jwa.EdDSA)
	return &jwks{priv: k}
}

// sseRead reads br until a line holding want (found), the stream's end,
// or wait, and returns what it read. Unlike sseUntil it does not fail the
// test, so that every check of a test is reported.
func sseRead(br *bufio.Reader, want string, wait time.Duration) (text string, found, ended bool) {
	type res struct {
		text         string
		found, ended bool
	}
	got := make(chan res, 1)
	go func() {
		var all strings.Builder
		for {
			line, err := br.ReadString('\n')
			all.WriteString(line)
			if strings.Contains(line, want) || err != nil {
				got <- res{all.String(), strings.Contains(line, want), err != nil}
				return
			}
		}
	}()
	select {
	case r := <-got:
		return r.text, r.found, r.ended
	case <-time.After(wait):
		return "", false, false
	}
}

// TestJWKSKidRevocationIDsAreTheVerifyingKey: a token's revocation ids
// (befc8ce) were the ids of every key of gateway.bearer.jwks_file under
// the kid its header names, skipping a key already named under another
// kid, where the verifier checks the signature with the first key of
// that kid (jwk.Set.LookupKeyID) whatever its other names. So:
//
//   - a key rotated by kid reuse, the new key put before the old one
//     under the same kid (the old one's tokens refused from then on):
//     the new key's tokens were recorded under both keys, and taking the
//     old key out afterwards dropped the retained events of the new
//     key's tokens and ended their SSE streams (a problem event, 401,
//     "the key that signed the token was removed"), though the new key
//     still verifies them;
//   - a key listed twice under two kids: a token naming the second kid
//     had no revocation id at all, so that taking the key out of the
//     file left its retained events and its streams, as before
//     befc8ce (the holder of a leaked key picks the kid its tokens name).
//
// Now a kid names the key the verifier takes for it.
func TestJWKSKidRevocationIDsAreTheVerifyingKey(t *testing.T) {
	_, oldPriv, _ := ed25519.GenerateKey(rand.Reader)
	_, newPriv, _ := ed25519.GenerateKey(rand.Reader)
	_, twicePriv, _ := ed25519.GenerateKey(rand.Reader)
	oldK, newK := jwksWithKid(t, oldPriv, "signing"), jwksWithKid(t, newPriv, "signing")
	twiceA, twiceB := jwksWithKid(t, twicePriv, "2026-a"), jwksWithKid(t, twicePriv, "current")
	file := newJWKS(t).file
	writeJWKS(t, file, newK, oldK, twiceA, twiceB) // rotated: the new key first, the old one still listed
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
	aud := map[string]any{"aud": []string{"wamp:realm1"}}
	newTok, twiceTok := newK.signed(t, "at+jwt", aud), twiceB.signed(t, "at+jwt", aud)
	for topic, tok := range map[string]string{"com.example.rotated": newTok, "com.example.twice": twiceTok} {
		r, body := g.do(t, "POST", "/wamp/realm1/publish/"+topic, `{"args":["`+topic+`"],"options":{"acknowledge":true,"retain":true}}`,
			"Authorization", tok)
		if r.StatusCode != 200 {
			t.Fatalf("retained publish to %s: %d %s", topic, r.StatusCode, body)
		}
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
	newEvents, twiceEvents := stream(newTok), stream(twiceTok)
	writeJWKS(t, file, newK) // the old key and the twice-listed one taken out
	g.reload(yml)
	if text, found, _ := sseRead(twiceEvents, "removed from gateway.bearer.jwks_file", 10*time.Second); !found {
		t.Errorf("the stream of a token naming the second kid of a key taken out of jwks_file did not end with its problem event (read %q)", text)
	}
	if r, body := g.do(t, "POST", "/wamp/realm1/publish/com.example.news", `{"args":["after"]}`, "Authorization", newTok); r.StatusCode/100 != 2 {
		t.Fatalf("publish with the new key's token: %d %s", r.StatusCode, body)
	}
	if text, found, _ := sseRead(newEvents, "after", 10*time.Second); !found {
		t.Errorf("the stream of the new key's token, still in jwks_file, did not get the event published after the reload; it read %q", text)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(g.logs(), "dropped retained events") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range []struct {
		topic string
		kept  bool
	}{{"com.example.twice", false}, {"com.example.rotated", true}} {
		got := retainedAt(t, g.addr, c.topic, time.Second)
		switch {
		case got && !c.kept:
			t.Errorf("%s: the retained event published with a token naming the second kid of a key taken out of jwks_file is still delivered", c.topic)
		case !got && c.kept:
			t.Errorf("%s: the retained event of the new key's token, still in jwks_file, was dropped when the old key of its kid was taken out", c.topic)
		}
	}
	if t.Failed() {
		t.Logf("log (tail):\n%s", lastLines(g.logs(), 12))
	}
}
