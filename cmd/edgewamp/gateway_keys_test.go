package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// keysYAML is a configuration with an open realm1 and the gateway's API
// keys (name → key) and signing key dev (its secret; none when "").
func keysYAML(apiKeys [][2]string, devSecret string) string {
	var b strings.Builder
	b.WriteString(`listeners: [{address: "127.0.0.1:0"}]
realms:
  - name: realm1
gateway:
  listen: 127.0.0.1:0
  api_keys:
`)
	if len(apiKeys) == 0 {
		b.WriteString("    []\n")
	}
	for _, k := range apiKeys {
		fmt.Fprintf(&b, "    - {name: %s, key: %q, realm: realm1, authid: %s, role: user}\n", k[0], k[1], k[0])
	}
	if devSecret != "" {
		fmt.Fprintf(&b, "  signing_keys:\n    - {key: dev, secret: %q, realm: realm1, authid: dev, role: device}\n", devSecret)
	}
	return b.String()
}

// signedQuery signs a request of body under key and secret as Crossbar's
// HTTP bridge clients do.
func signedQuery(key, secret, body string, n int) string {
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(key + ts + fmt.Sprint(n) + fmt.Sprint(n) + body))
	return url.Values{"key": {key}, "timestamp": {ts}, "seq": {fmt.Sprint(n)}, "nonce": {fmt.Sprint(n)},
		"signature": {base64.URLEncoding.EncodeToString(mac.Sum(nil))}}.Encode()
}

// TestGatewayKeysRotatedOnSIGHUP: the binary and SIGHUP. The gateway's API
// and signing keys changed only with a restart, which dropped every
// client: a leaked key could not be taken away otherwise. Now a reload
// installs the file's keys: a removed key is refused and its SSE streams
// end (a streamed call's callee interrupted), a rotated key's old value is
// refused and its new one taken, a signing key's new secret too; the
// streams of the keys the reload leaves alone go on; a file with a bad
// key is refused and the keys in use stay.
func TestGatewayKeysRotatedOnSIGHUP(t *testing.T) {
	const (
		alice, bob, bob2 = "alice-key-0123456789", "bob-key-0123456789ab", "bob-key-2-0123456789"
		dev, dev2        = "dev-secret-0123456789", "dev-secret-2-01234567"
	)
	g := startReloadedGateway(t, keysYAML([][2]string{{"alice", alice}, {"bob", bob}}, dev))
	reload := g.reload
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	waitInterrupted := tickCallee(ctx, t, g.addr)
	const events, call = "/wamp/realm1/events/com.example.news", "/wamp/realm1/call/com.example.tick"
	const callBody = `{"options":{"timeout":120000}}`
	nonce := 0
	// open opens an SSE stream with an API key, or signed by dev's secret
	// when key is "dev:<secret>".
	open := func(path, key string) *bufio.Reader {
		t.Helper()
		method, body := "GET", ""
		if path == call {
			method, body = "POST", callBody
		}
		u := g.base + path
		if secret, ok := strings.CutPrefix(key, "dev:"); ok {
			nonce++
			u += "?" + signedQuery("dev", secret, body, nonce)
		}
		req, _ := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
		if !strings.HasPrefix(key, "dev:") {
			req.Header.Set("X-API-Key", key)
		}
		return openSSE(t, req, path == call)
	}
	flowing := func(what, key string, evs, calls []*bufio.Reader) {
		t.Helper()
		if r, body := g.do(t, "POST", "/wamp/realm1/publish/com.example.news", `{"args":["`+what+`"]}`, "X-API-Key", key); r.StatusCode/100 != 2 {
			t.Fatalf("%s: publish: %d %s", what, r.StatusCode, body)
		}
		for _, br := range evs {
			sseUntil(t, br, what, what)
		}
		for _, br := range calls {
			sseUntil(t, br, "event: progress", what)
		}
	}
	status := func(key string) int {
		t.Helper()
		r, body := g.do(t, "POST", "/wamp/realm1/publish/com.example.news", `{}`, "X-API-Key", key)
		if r.StatusCode != 202 && r.StatusCode != 401 {
			t.Fatalf("a publication: %d %s", r.StatusCode, body)
		}
		return r.StatusCode
	}
	signedStatus := func(secret string) int {
		t.Helper()
		nonce++
		r, body := g.do(t, "POST", "/wamp/realm1/publish/com.example.news?"+signedQuery("dev", secret, `{}`, nonce), `{}`)
		if r.StatusCode != 202 && r.StatusCode != 401 {
			t.Fatalf("a signed publication: %d %s", r.StatusCode, body)
		}
		return r.StatusCode
	}

	aliceEvents, aliceCall := open(events, alice), open(call, alice)
	bobEvents, bobCall := open(events, bob), open(call, bob)
	devEvents := open(events, "dev:"+dev)
	reload(keysYAML([][2]string{{"alice", alice}, {"bob", bob}}, dev)) // nothing changes
	flowing("after a reload that changes nothing", bob, []*bufio.Reader{aliceEvents, bobEvents, devEvents}, []*bufio.Reader{aliceCall, bobCall})

	// alice's key leaked: removed.
	reload(keysYAML([][2]string{{"bob", bob}}, dev))
	sseEnds(t, aliceEvents, "the API key was removed", "the event stream of the removed key")
	sseEnds(t, aliceCall, "the API key was removed", "the streamed call of the removed key")
	waitInterrupted("the streamed call of the removed key")
	if st := status(alice); st != 401 {
		t.Fatalf("the removed key: %d, want 401", st)
	}
	flowing("after a reload that removes another key", bob, []*bufio.Reader{bobEvents, devEvents}, []*bufio.Reader{bobCall})
	g.waitLog(`removed="1: api_key alice"`, 1)

	// bob's key and dev's secret rotated.
	reload(keysYAML([][2]string{{"bob", bob2}}, dev2))
	sseEnds(t, bobEvents, "the API key was changed", "the event stream of the rotated key")
	sseEnds(t, bobCall, "the API key was changed", "the streamed call of the rotated key")
	waitInterrupted("the streamed call of the rotated key")
	sseEnds(t, devEvents, "the signing key was changed (its secret)", "the event stream of the rotated secret")
	if st := status(bob); st != 401 {
		t.Fatalf("bob's old key: %d, want 401", st)
	}
	if st := status(bob2); st != 202 {
		t.Fatalf("bob's new key: %d, want 202", st)
	}
	if st := signedStatus(dev); st != 401 {
		t.Fatalf("signed with dev's old secret: %d, want 401", st)
	}
	if st := signedStatus(dev2); st != 202 {
		t.Fatalf("signed with dev's new secret: %d, want 202", st)
	}

	// A file with a bad key is refused; the keys in use stay, and so do
	// their streams.
	bobEvents = open(events, bob2)
	g.reloadRefused(keysYAML([][2]string{{"bob", "short"}}, dev2))
	if st := status(bob2); st != 202 {
		t.Fatalf("bob's key after a refused reload: %d, want 202", st)
	}
	flowing("after a refused reload", bob2, []*bufio.Reader{bobEvents}, nil)
	if !strings.Contains(g.logs(), "the gateway's API and signing keys") {
		t.Fatalf("the reload's log line does not say that the keys apply:\n%s", g.logs())
	}
}
